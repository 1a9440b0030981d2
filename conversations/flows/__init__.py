"""The three flows and the rule that picks one for a chat: customer bot, staff private chat, staff group."""

from __future__ import annotations

from typing import Any

from conversations.flow import Flow
from conversations.flows import customer, device_history, dispatcher, technician
from services import views
from services.messages import Inbound

CUSTOMER = Flow(customer.CUSTOMER_FLOW, customer.view_request, customer.load_view)
# the technician's view gains the van and fault trees for the steps that read them (conversations/flows/stock.py), and a
# visit's device files for the history buttons (conversations/flows/device_history.py)
TECHNICIAN = Flow(technician.TECHNICIAN_FLOW, technician.view_request, device_history.load_view)
DISPATCHER = Flow(dispatcher.DISPATCHER_FLOW, dispatcher.view_request, views.load_dispatcher_view)
ALL_FLOWS: tuple[Flow[Any], ...] = (CUSTOMER, TECHNICIAN, DISPATCHER)


def flow_for(event: Inbound) -> Flow[Any]:
    if event.chat.bot == "customer":
        return CUSTOMER
    if event.chat_type == "group":
        return DISPATCHER
    return TECHNICIAN
