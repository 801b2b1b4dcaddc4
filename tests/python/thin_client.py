"""A thin client that is not our code: Python grpcio against cowork.sock.

Usage:
  thin_client.py check SOCKET PROTO_DIR   health, reflection, System/Status, Chat
                                          (and the trace ids of three Chat calls)
  thin_client.py unknown-service SOCKET   call a service nobody serves

Prints one JSON object (check) or the status code and message.
"""
import json
import os
import subprocess
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def channel(sock):
    # grpc-core derives :authority from the socket path ("tmp%2F...sock"),
    # which Rust's h2 rejects as malformed (hyperium/hyper#3750). Any valid
    # authority works; grpcurl and tonic already send one.
    return grpc.insecure_channel(
        f"unix://{sock}", options=[("grpc.default_authority", "localhost")])


def compile_protos(proto_dir, out_dir):
    files = []
    for root, _, names in os.walk(proto_dir):
        files += [os.path.join(root, n) for n in names if n.endswith(".proto")]
    subprocess.check_call(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
    sys.path.insert(0, out_dir)


def check(sock, proto_dir):
    out = tempfile.mkdtemp()
    compile_protos(proto_dir, out)
    from cowork.system.v1 import system_pb2, system_pb2_grpc
    from cowork.chat.v1 import chat_pb2, chat_pb2_grpc
    from google.protobuf.json_format import MessageToDict

    ch = channel(sock)
    health = health_pb2_grpc.HealthStub(ch)
    result = {"health": {}}
    for svc in ["", "cowork.system.v1.System", "cowork.chat.v1.Chat"]:
        r = health.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5)
        result["health"][svc] = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    reqs = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    names = []
    for resp in refl.ServerReflectionInfo(reqs, timeout=5):
        names += [s.name for s in resp.list_services_response.service]
    result["reflection"] = sorted(names)

    status = system_pb2_grpc.SystemStub(ch).Status(system_pb2.StatusRequest(), timeout=5)
    result["status"] = MessageToDict(status, preserving_proto_field_name=True)
    chat = chat_pb2_grpc.ChatStub(ch).GetStatus(chat_pb2.GetStatusRequest(), timeout=5)
    result["chat_pid"] = chat.pid
    # Relayed calls on one connection: each answer names its trace. After
    # the first, coworkd sends the header's name as an HPACK table index.
    ids = []
    for _ in range(3):
        _, call = chat_pb2_grpc.ChatStub(ch).GetStatus.with_call(
            chat_pb2.GetStatusRequest(), timeout=5)
        ids += [v for k, v in call.initial_metadata() if k == "cowork-trace-id"]
    result["trace_ids"] = ids
    print(json.dumps(result))


def unknown_service(sock):
    ch = channel(sock)
    call = ch.unary_unary("/cowork.nothing.v1.Nope/Method")
    try:
        call(b"", timeout=5)
        print("unexpected success")
        sys.exit(1)
    except grpc.RpcError as e:
        print(e.code().name, e.details())


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "unknown-service":
        unknown_service(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
