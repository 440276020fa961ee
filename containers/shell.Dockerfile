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

# Node SDKs in /root/node_modules: ES modules under /root (the examples) resolve them
# there (NODE_PATH covers CommonJS elsewhere). openai 6 still supports bookworm's Node 18.
WORKDIR /root
RUN npm install --no-audit --no-fund openai@6 @anthropic-ai/sdk
ENV NODE_PATH=/root/node_modules

# Login shells (`fly ssh console`) reset PATH in /etc/profile: put the SDKs back.
RUN echo 'export PATH=/opt/sdk/bin:$PATH NODE_PATH=/root/node_modules' > /etc/profile.d/sdk.sh

COPY containers/shell/start.sh /usr/local/bin/start-shell
COPY containers/shell/examples/ /root/examples/
CMD ["/usr/local/bin/start-shell"]
