"""The namespace lab: the cluster of a stack on one Linux machine, real daemons, rendered files.

One network namespace per node (with a private mount namespace, see webcluster.sandbox),
three bridges for the three networks, a client namespace on the external network.
"""
