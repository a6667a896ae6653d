"""ha-web-cluster's Pulumi program (see docs/pulumi.md); the work happens in components.program."""

from components.program import main

main()
