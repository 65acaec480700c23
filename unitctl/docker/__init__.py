"""docker-run: run one named container in the foreground under systemd, idempotently.

This package backs ``bin/docker-run``::

    docker-run [--engine docker|podman] [docker run options] IMAGE [CMD...]

One concept per module:

* :mod:`~unitctl.docker.argv` (pure): the argv parsed into a ``RunRequest``,
  the ``-p`` syntax (``PortMapping``, ``parse_port``);
* :mod:`~unitctl.docker.spec` (pure): the desired ``ContainerSpec``, its
  ``spec_hash`` and the labels docker-run stamps;
* :mod:`~unitctl.docker.runtime`: the ``ContainerRuntime`` port and its CLI
  adapter ``CliContainerRuntime``, the only code that spawns the engine;
* :mod:`~unitctl.docker.fake`: ``FakeContainerRuntime``, the in-memory engine
  held to the same contract suite;
* :mod:`~unitctl.docker.run`: the flow -- flock, ``ensure_container``, attach
  with signal forwarding, the ``--link`` wait, ``main``.

The package itself imports nothing: ``import unitctl.docker.argv`` -- which
``unitctl.generate`` does -- stays pure and never loads the runtime or the
flow. Import each name from the module that holds it.
"""
