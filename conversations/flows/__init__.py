"""The three flows and the rule that picks one for a chat: customer bot, staff private chat, staff group."""

from __future__ import annotations

from conversations.flows.customer import CustomerFlow
from conversations.flows.dispatcher import DispatcherFlow
from conversations.flows.technician import TechnicianFlow
from conversations.messages import Inbound

CUSTOMER = CustomerFlow()
TECHNICIAN = TechnicianFlow()
DISPATCHER = DispatcherFlow()
ALL_FLOWS = (CUSTOMER, TECHNICIAN, DISPATCHER)


def flow_for(event: Inbound):
    if event.chat.bot == "customer":
        return CUSTOMER
    if event.chat_type == "group":
        return DISPATCHER
    return TECHNICIAN
