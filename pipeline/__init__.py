"""Aftercare: a post-purchase journey pipeline on Kafka.

Upstream systems publish purchase, shipment, app-usage and preference events (Avro, single-object
encoding, schemas in ``schemas/``); a Faust worker keeps each customer's journey and emits timed
touchpoint commands; channel senders deliver them and record every outcome on ``deliveries``.
"""

__version__ = "0.1.0"
