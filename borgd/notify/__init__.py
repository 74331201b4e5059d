"""Telling the world: the outbox and its senders (Apprise, pings, webhooks), the metrics file."""
