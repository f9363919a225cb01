"""Help-desk transcript inspection (智能质检) built on the review pipeline.

``analyze_conversations(items, pipeline, rules, limits)`` is the entry point;
``load_conversation_rules(lexicon_dir)`` loads the lexicons and QA profiles once.
"""

from app.conversations import present
from app.conversations.engine import analyze_conversation, analyze_conversations
from app.conversations.lexicons import ConversationRules, load_conversation_rules
from app.conversations.model import Limits

__all__ = [
    "ConversationRules",
    "Limits",
    "present",
    "analyze_conversation",
    "analyze_conversations",
    "load_conversation_rules",
]
