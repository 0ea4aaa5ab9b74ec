"""Model routes: which champion versions serve (GET /models) and picking up new ones now (POST /admin/reload)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from serving.api.errors import error_response
from serving.api.routing import actor_of, runtime_of, service
from training.registry import ModelNotFound

router = APIRouter()


@router.post("/admin/reload")
def admin_reload(request: Request, svc=Depends(service)):
    """Pick up the champion models now (admin). 503 keeps the old models serving and says why."""
    runtime = runtime_of(svc)
    try:
        done = svc.reload_models(actor=actor_of(request))
    except ModelNotFound as err:
        return error_response(503, f"no champion to reload: {err}", model_versions=runtime.scorer.model_versions)
    except Exception as err:  # loading failed: the old models keep serving
        return error_response(503, f"could not load the champion models ({type(err).__name__}: {err})",
                              model_versions=runtime.scorer.model_versions)
    return {"model_versions": done.runtime.scorer.model_versions, "changed": done.changed,
            "previous": done.previous, "loaded_at": done.runtime.loaded_at.isoformat()}


@router.get("/models")
def serving_models(svc=Depends(service)):
    """The model versions serving and when they were loaded."""
    runtime_of(svc)
    return svc.models()
