"""The demo: ``aftercare run`` (what ``make run`` runs), the whole pipeline end to end.

What is the demo? Everything Aftercare is, on one machine, in about two minutes: a real Kafka
broker, the journey worker and the channel senders as the separate processes they are in
production, the provider sandbox standing in for the email, SMS, WhatsApp, push and webhook
providers, and a simulated population of customers whose purchases, payments, shipments, app use
and preference changes of a month and a half are produced to the input topics as they "happen".
The simulated weeks pass on an accelerated clock that every process shares, so a 14-day feedback
request goes out about forty real seconds after its parcel was delivered.

While it runs, a live view shows the simulated date, the events produced, and the touchpoints
dispatched and how they ended (delivered, failed, suppressed, expired), journey by journey; the
worker's and the senders' ``/metrics`` can be scraped meanwhile. At the end the pipeline drains,
every process stops, and the run leaves, in ``<AFTERCARE_HOME>/runs/<stamp>/``, the analysts'
report, ``summary.json`` (the numbers of the final table, for scripts), the sandbox's outbox of
every message sent, and each process's log.

The package, in the order a run uses it:

- :mod:`.runs`: one folder, topic prefix and set of consumer groups per run; earlier runs' topics
  are deleted so the broker does not fill up.
- :mod:`.children`: the child processes, each in a process group of its own, stopped cleanly
  whatever happens (Ctrl-C included).
- :mod:`.watch`: counts what comes out of ``dispatch`` and ``deliveries``.
- :mod:`.run`: the phases, from broker to report.
"""

from pipeline.demo.options import DemoError, DemoOptions
from pipeline.demo.run import run_demo

__all__ = ["DemoError", "DemoOptions", "run_demo"]
