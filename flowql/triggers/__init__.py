"""Inbound triggers: the HTTP edges that start processes (`/hooks`, public forms), beside
`rest_compat` and the transport; they call services and never hold SQL of their own."""
