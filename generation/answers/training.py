"""The training API's answers, spelt as the hosted service spells them: `messege` (and `message`) carries
a training's stage, `data` a log line. Beyond the hosted API: progress, step, loss, ETA and the URLs of
its sample images."""

from generation.answers import selectors
from generation.answers.envelope import message
from generation.inputs import storage
from generation.kinds import training
from generation.models import Job


def stage(job: Job) -> str:
    """The hosted stage a training is at."""
    if job.status == Job.Status.QUEUED:
        return training.QUEUED
    if job.status == Job.Status.RUNNING:
        return job.details.get("stage") or training.RUNNING
    return training.READY if job.status == Job.Status.SUCCESS else training.FAILED


def log_line(job: Job) -> str:
    """`data`: where the training stands, in a line."""
    now = stage(job)
    training_id = job.params["training_id"]
    if now == training.QUEUED:
        ahead = selectors.queue_position(job)
        return f"Waiting for a GPU ({ahead} training(s) ahead)." if ahead else "Waiting for a GPU."
    if now == training.READY:
        return f'Model ready: generate with "lora_model": "{training_id}".'
    if now == training.FAILED:
        return job.error or "Failed"
    line = f"step {job.progress_step}/{job.progress_total or job.params['steps']}"
    if (loss := job.details.get("loss")) is not None:
        line += f", loss {loss:.4f}"
    if (eta := job.details.get("eta")) is not None:
        line += f", about {eta:.0f} s left"
    return line


def samples(job: Job) -> list[str]:
    return [storage.absolute_url(job.base_url, sample["name"]) for sample in job.details.get("samples", [])]


def submitted(job: Job) -> dict:
    minutes = max(1, round(job.predicted_seconds / 60 + 0.5))
    body = {
        **message("success", training.QUEUED),
        "data": f"it will take upto {minutes} minutes.",
        "training_id": job.params["training_id"],
        "id": job.id,
    }
    return _with_notes(job, body)


def status(job: Job) -> dict:
    """fine_tune_status: the stage, a log line, and how far it got."""
    now = stage(job)
    total = job.progress_total or job.params["steps"]
    step = total if job.status == Job.Status.SUCCESS else job.progress_step
    body = {
        **message("failed" if now == training.FAILED else "success", now),
        "data": log_line(job),
        "training_id": job.params["training_id"],
        "id": job.id,
        "progress": round(step / total, 3) if total else 0.0,
        "step": step,
        "total_steps": total,
        "loss": job.details.get("loss"),
        "eta": job.details.get("eta") if job.status == Job.Status.RUNNING else None,
        "samples": samples(job),
        "losses": job.details.get("losses", []),
        "sandbox": job.params.get("sandbox", False),
    }
    if now == training.READY:
        body["lora_model"] = body["model_id"] = job.params["training_id"]
    if job.status == Job.Status.CANCELED:
        body["canceled"] = True
    return _with_notes(job, body)


def listing(jobs) -> dict:
    """finetune_list: the account's trainings, newest first."""
    return {
        "status": "success",
        "data": [
            {
                "training_id": job.params["training_id"],
                "id": job.id,
                "status": stage(job),
                "instance_prompt": job.params.get("instance_prompt", ""),
                "training_type": job.params.get("training_type") or None,
                "base_model": job.params.get("checkpoint", ""),
                "dreambooth": job.params.get("dreambooth", False),
                "max_train_steps": job.params.get("steps"),
                "created_at": job.queued_at.isoformat(),
                "lora_model": job.params["training_id"] if job.status == Job.Status.SUCCESS else None,
            }
            for job in jobs
        ],
    }


def webhook(job: Job, now: str | None = None) -> dict:
    """A training's webhook body at a stage (its current one when `now` is None)."""
    now = now or stage(job)
    return {
        "status": "failed" if now == training.FAILED else "success",
        "training_status": now,
        "logs": log_line(job) if now == stage(job) else now,
        "model_id": job.params["training_id"],
        "id": job.id,
        "track_id": job.params.get("track_id"),
    }


def deleted(training_id: str) -> dict:
    return {**message("success", "Training and its model deleted"), "training_id": training_id}


def canceled(job: Job) -> dict:
    return {
        **message("success", "Training canceled" if job.status == Job.Status.CANCELED else stage(job)),
        "training_id": job.params["training_id"],
        "data": log_line(job),
    }


def cropped(url: str, how: str) -> dict:
    """base64_crop: the cropped photo's URL (an upload of the account), and how it was cropped."""
    return {"status": "success", "output": [url], "link": url, "crop": how}


def _with_notes(job: Job, body: dict) -> dict:
    if notes := job.params.get("not_applied"):
        body["meta"] = {"not_applied": notes}
    return body
