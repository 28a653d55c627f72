"""Runner agent: runs one project's test suite against one torch build in a sandbox.

Plain Python, no Django. The web side imports only `ci_runners.agent.contracts` (the wire);
this package re-exports nothing, so importing the contracts loads none of the agent's runtime.
"""
