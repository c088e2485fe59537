"""The edge: what an HTTP request or a CloudEvent meets first.

Routing, the one exception → status table, body limits, authentication of callers and of event
senders, inbound CloudEvent parsing and the warm-up behind readiness. Nothing below imports from
here: library errors carry no HTTP status, this package maps them.
"""
