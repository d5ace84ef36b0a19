"""What the tests share, one job per module; fixtures stay in tests/conftest.py.

Building data:
- ``events``: the one factory of call events (JSON), and the contract's schema file;
- ``streams``: seeded streams shaped like a dialer's; ``strategies``: hypothesis' version;
- ``clock``: GMT+08:00 and now in epoch ms; ``credentials``: the AK/SK pairs tests sign with.

Running our code:
- ``counting``: the engine's EventCounter built for a test (the ``event_counter`` fixture);
- ``app_client``: the app served in-process; ``api_process``: the API as a real process;
- ``processes``: the CLI as a child process (``cli_command``, ``run_cli``, ``ServiceProcess``);
- ``ports``: free loopback ports; ``waiting``: waits on a condition, never a settling sleep.

Around the services:
- ``kafka_topics``: a stream published onto a test's topic and read back; ``detail``: the
  model's countDetail of a stream beside what Redis holds; ``cleanup``: keys and topics removed;
- ``kafka_cluster``, ``redis_cluster``: several nodes on loopback, for the fault tests and the
  Redis Cluster test (the product's stack runs one node of each);
- ``faults``: the fault tests' paced producer, seeds, metrics and consumer-group waits;
- ``grafana``: Grafana's side of the dashboards, played by hand; ``compose``: docker-compose.yml
  read as YAML.
"""
