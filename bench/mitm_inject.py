"""mitmdump addon: send api.test to the bench upstream over TLS with the credential
injected and the Proxy-* headers removed, as the tokenizer does."""
import os

PORT = int(os.environ["BENCH_UPSTREAM_PORT"])
AUTH = "Bearer " + os.environ["BENCH_API_KEY"]


def request(flow):
    if flow.request.host == "api.test":
        flow.request.scheme, flow.request.port = "https", PORT
        flow.request.headers["Host"] = "api.test"
        flow.request.headers["Authorization"] = AUTH
        for name in ("Proxy-Tokenizer", "Proxy-Authorization"):
            flow.request.headers.pop(name, None)
