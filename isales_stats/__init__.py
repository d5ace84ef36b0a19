"""isales-stats: exact, live outbound-campaign statistics from Kafka events, served like CC-iSales.

The package's floors, from the ground up (each imports only the floors below it; the contract
in ``.importlinter`` holds them to that, and ``make lint`` checks it):

- ``core``: settings, the event contract and id rules, the key layout, days, signing;
- ``engine`` (the ``engine/`` folder) counts events into Redis and reads the counters back;
  ``producing`` publishes events (the SDK, the iSales callback mapping, the traffic model);
  ``client`` signs and sends statistics queries. None of the three imports another;
- ``api`` (the ``api/`` folder): the HTTP interface, on the engine's read side and the
  producing side;
- ``commands``: what people run (the command line, the demo, the local stack).
"""
