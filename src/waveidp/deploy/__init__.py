"""`wave deploy`: a store model behind the gateway, swapped without dropping a request, loaded on demand.

    from waveidp.deploy.planning import place, resolve_target
    placed = place(ModelStore(), "smollm2-135m-instruct-f16", resolve_target(None, fleet_file=None))
    placed.revision          # the store model fit chose, its device, the llama-server flags from sizing

`records` holds what is deployed (`WAVE_HOME/deployments.json`), `planning` where and how a model
runs, `load_time` how long its engine takes to load, `remote` a fleet node's backend and commands.
The engines themselves run in `wave up` (`run.deployer`, `run.deploy_api`).
"""

from waveidp.deploy.records import Deployment, Residence, Revision, load_deployments, save_deployments

__all__ = ["Deployment", "Residence", "Revision", "load_deployments", "save_deployments"]
