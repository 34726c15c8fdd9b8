"""An HTTP-based environment: it brings its own FastAPI app and server (see Dockerfile).
affinetes calls `env.<name>(kwargs)` as `POST /<name>` with the kwargs as JSON body."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="echo environment")


class EchoRequest(BaseModel):
    text: str
    times: int = 1


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/echo")
def echo(req: EchoRequest):
    return {"text": " ".join([req.text] * req.times)}


@app.post("/reverse")
def reverse(req: EchoRequest):
    return {"text": req.text[::-1]}
