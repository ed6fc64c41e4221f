"""The host contract: what the deploy (``deploys/``) and the runbooks (``runbooks/``) agree on about a host.

One small package that both import and that imports nothing else of either (only the standard
library and pydantic), so each fact about a host is written once:

==================  =============================================================================
module              holds
==================  =============================================================================
``paths``           orderops' directories and files on a host (state dir, uploads, stack layout,
                    controller-host layout) and the controller machine's state dir rule
                    (``ORDEROPS_STATE_DIR``)
``lock``            the per-host lock protocol: lock file, guard, the acquire/release scripts,
                    the "busy" exit code, the run-ID variable
``release``         the release record (``release.json``): schema, read and write commands, and
                    the rule which of inventory and record names the running version
``compose``         the compose project command line, the container-state command and its parser
                    (``docker inspect --format '{{json .}}'``)
``services``        the stack's services, the image each runs, the "running and healthy" rule,
                    the database identity (user and database name)
``images``          the one image-reference parser
``dotenv``          the ``.env`` quoting compose reads back byte for byte, and the one reader the
                    host's helper scripts use (never ``. .env``)
==================  =============================================================================
"""
