"""The three flows and the rule that picks one for a chat: customer bot, staff private chat, staff group."""

from __future__ import annotations

from conversations.flow import Flow
from conversations.flows import customer, dispatcher, technician
from services.messages import Inbound

CUSTOMER = Flow(customer.CUSTOMER_FLOW, customer.load_view)
TECHNICIAN = Flow(technician.TECHNICIAN_FLOW, technician.load_view)
DISPATCHER = Flow(dispatcher.DISPATCHER_FLOW, dispatcher.load_view)
ALL_FLOWS = (CUSTOMER, TECHNICIAN, DISPATCHER)


def flow_for(event: Inbound) -> Flow:
    if event.chat.bot == "customer":
        return CUSTOMER
    if event.chat_type == "group":
        return DISPATCHER
    return TECHNICIAN
