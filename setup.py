"""Packaging for unitctl: a systemd-native cluster scheduler (fleet done right)."""

from setuptools import find_packages, setup

GRPC = ["aetcd==1.0.0", "grpcio==1.85.1", "protobuf==7.36.2"]

setup(
    name="unitctl",
    version="0.1.0",
    description="Run systemd units across a cluster of Linux machines, driven from etcd.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # unitctl_testing: the cluster harness, shipped with the package (its docstring says why)
    packages=[*find_packages(include=["unitctl", "unitctl.*", "unitctl_testing",
                                      "unitctl_testing.*"]), "unitctl.templates"],
    package_data={"unitctl": ["py.typed"], "unitctl.templates": ["*.j2"],
                  "unitctl.api": ["openapi.json", "ui/*.html", "ui/*.css", "ui/*.js"],
                  "unitctl_testing": ["py.typed"]},
    include_package_data=True,
    scripts=["bin/docker-run"],
    install_requires=[
        "click==8.4.0",
        "jinja2==3.1.6",
        "sdnotify==0.3.2",
        # the agent and the CLI speak etcd's JSON gateway (registry/gateway.py):
        # aetcd and grpcio are in the "grpc" extra (EtcdKV)
        "dbus-fast==5.2.0",
        "PyYAML==6.0.3",
        # the agent's /metrics (Prometheus exposition format and registry)
        "prometheus_client==0.26.0",
        # the agent's DNS server for the cluster domain (wire format, no hand parsing)
        "dnspython==2.8.0",
    ],
    extras_require={
        # EtcdKV (registry/etcd.py, etcd's gRPC API): the API server's adapter and the
        # benchmarks'; the agent and the CLI do not import it (docs/architecture.md)
        "grpc": GRPC,
        # the API server (unitctl serve); the agent and the CLI do not need it
        "api": [
            "aiohttp==3.14.5",
            *GRPC,
        ],
        "test": [
            *GRPC,
            "pytest==9.0.3",
            "pytest-timeout==2.4.0",
            "hypothesis==6.155.2",
            "mypy==2.4.1",
            "ruff==0.17.6",
            "types-PyYAML==6.0.12.20261113",
        ],
        # the dashboard's browser tests (drives Debian's chromium through chromium-driver)
        "browser": [
            "selenium==4.51.0",
        ],
    },
    entry_points={
        "console_scripts": [
            "unitctl=unitctl.cli.launch:main",
            "unitctl-agent=unitctl.daemon:main",
        ],
    },
)
