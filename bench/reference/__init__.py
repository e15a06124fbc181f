"""A textbook Django Channels MQTT echo, the yardstick the benchmark holds the gate against.

Written as a Channels tutorial would write it, on purpose: the stock consumer, group_send
fan-out, nothing tuned. It is not part of the product.
"""
