"""The producing side: call events into Kafka.

The publisher SDK (installed into producers' own applications), the mapping of iSales result
callbacks to events, and the traffic model behind ``isales-stats simulate``. Uses the ground
floor only: the engine's internals are none of a producer's business.
"""
