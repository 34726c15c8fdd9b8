/** Files `afs init` writes, per environment type. Each template runs as is. */
export function templateFiles(name: string, type: "function" | "http"): Record<string, string> {
  return type === "function" ? functionTemplate(name) : httpTemplate(name);
}

function functionTemplate(name: string): Record<string, string> {
  return {
    "env.py": `"""${name}: an affinetes environment.

Public module-level functions and the methods of \`Actor\` are remote methods:
  afs run --dir ${name} --name ${name}
  afs call ${name} hello --arg name=you
"""

import os


def hello(name: str = "world") -> str:
    """A module-level function."""
    return "Hello, %s!" % name


class Actor:
    """Built on the first call, so variables given with --env are visible here."""

    def __init__(self):
        self.greeting = os.environ.get("GREETING", "Hello")

    async def greet(self, name: str = "world") -> dict:
        """An async method: many calls run at once."""
        return {"message": "%s, %s!" % (self.greeting, name)}
`,
    ".dockerignore": "__pycache__\n*.pyc\n.env\n",
  };
}

function httpTemplate(name: string): Record<string, string> {
  return {
    "env.py": `"""${name}: an HTTP-based affinetes environment (a FastAPI app with its own server).

Each POST route is a method; the kwargs are the JSON body:
  afs run --dir ${name} --name ${name}
  afs call ${name} greet --arg name=you
"""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="${name}")


class GreetRequest(BaseModel):
    name: str = "world"


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/greet")
def greet(req: GreetRequest):
    return {"message": "Hello, %s!" % req.name}
`,
    Dockerfile: `# BASE_IMAGE comes from affinetes' base-image setting (AFFINETES_BASE_IMAGE).
ARG BASE_IMAGE=python:3.12-slim
FROM \${BASE_IMAGE}
WORKDIR /app
COPY requirements.txt /app/requirements.txt
RUN python3 -c "import fastapi, uvicorn" 2>/dev/null || pip install --no-cache-dir -r /app/requirements.txt
COPY . /app
EXPOSE 8000
CMD ["python3", "-m", "uvicorn", "env:app", "--host", "0.0.0.0", "--port", "8000"]
`,
    "requirements.txt": "fastapi\nuvicorn\n",
    ".dockerignore": "__pycache__\n*.pyc\n.env\n",
  };
}
