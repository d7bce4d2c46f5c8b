"""The one signal that sends a packet to the full render."""


class Unsure(Exception):
    """This packet (or this template) is outside what the fast path draws exactly
    like the full render: render it in full. The message names the case, never
    patient data."""
