"""ha-web-cluster: the cluster model, its rendered configuration and the namespace lab.

Pulumi-free on purpose: the Pulumi program (components/, __main__.py), the lab and
the guest end-to-end run all consume what this package renders.
"""
