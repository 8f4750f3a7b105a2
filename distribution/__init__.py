"""Routing objects to collections and subscriptions; webhook delivery."""
