"""The three flows and the rule that picks one for a chat: customer bot, staff private chat, staff group."""

from __future__ import annotations

from typing import Any

from conversations.flow import Flow
from conversations.flows import customer, device_history, dispatcher, settlement, technician
from services.actions import Action
from services.messages import Inbound
from services.views import DispatcherViewRequest

CUSTOMER = Flow(customer.CUSTOMER_FLOW, customer.view_request, customer.load_view)
# the technician's view gains the van and fault trees for the steps that read them (conversations/flows/stock.py), and a
# visit's device files for the history buttons (conversations/flows/device_history.py)
TECHNICIAN = Flow(technician.TECHNICIAN_FLOW, technician.view_request, device_history.load_view)


def _dispatcher_request(event: Inbound, action: Action | None) -> DispatcherViewRequest:
    # an Adjust press reads the fee too, to check the typed amount against the bill (conversations/flows/settlement.py)
    return settlement.view_request(action, dispatcher.view_request(event, action))


DISPATCHER = Flow(dispatcher.DISPATCHER_FLOW, _dispatcher_request, settlement.load_view)
ALL_FLOWS: tuple[Flow[Any], ...] = (CUSTOMER, TECHNICIAN, DISPATCHER)


def flow_for(event: Inbound) -> Flow[Any]:
    if event.chat.bot == "customer":
        return CUSTOMER
    if event.chat_type == "group":
        return DISPATCHER
    return TECHNICIAN
