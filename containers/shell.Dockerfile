# The sandbox shell: the clients an agent uses (curl, git, gh, Python and Node with the
# OpenAI and Anthropic SDKs), holding only dummy keys. Its start script trusts the
# sidecar's CA and points the API hosts at the sidecar.
# Build from the repository root:
#   docker build -f containers/shell.Dockerfile -t tokenizer-shell .

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates curl git gh python3 python3-venv nodejs npm procps iproute2 \
 && rm -rf /var/lib/apt/lists/*

# Python SDKs in a virtual environment on PATH (Debian's python3 is externally managed).
RUN python3 -m venv /opt/sdk \
 && /opt/sdk/bin/pip install --no-cache-dir openai anthropic certifi
ENV PATH=/opt/sdk/bin:$PATH

# Node SDKs in /opt/node_modules: ES modules under /opt (the examples) resolve them
# there (NODE_PATH covers CommonJS elsewhere). openai 6 still supports bookworm's Node 18.
WORKDIR /opt
RUN npm install --no-audit --no-fund openai@6 @anthropic-ai/sdk
ENV NODE_PATH=/opt/node_modules

# Login shells (`fly ssh console`) reset PATH in /etc/profile: put the SDKs back.
RUN echo 'export PATH=/opt/sdk/bin:$PATH NODE_PATH=/opt/node_modules' > /etc/profile.d/sdk.sh

# The agent's account: no password, no sudo, no capabilities. start-shell runs the
# container's command as this user when AGENT_USER is set (transparent mode: it must
# not be able to change the firewall). `su agent` from `fly ssh console` does the same.
RUN useradd --create-home --uid 1000 --shell /bin/bash agent

COPY containers/shell/start.sh /usr/local/bin/start-shell
COPY containers/shell/examples/ /opt/examples/
WORKDIR /home/agent
CMD ["/usr/local/bin/start-shell"]
