# Native SIP004 codec (native/*.cc, see native/module.cc), built by scripts/build-native.mjs into
# build/Release/ladder_aead.node. Optional: without it Ladder uses node:crypto.
# OpenSSL symbols come from the node binary at load time; headers from node's include/node/openssl.
{
  "targets": [
    {
      "target_name": "ladder_aead",
      "sources": [
        "native/module.cc",
        "native/common.cc",
        "native/napi_args.cc",
        "native/stream_codec.cc",
        "native/oneshot.cc",
        "native/udp_sockets.cc",
        "native/udp_fastpath.cc",
        "native/reuseport.cc",
        "native/fd_watch.cc",
        "native/relay_pair.cc",
        "native/tcp_connect.cc",
        "native/dest_stream.cc",
        "native/tcp_accept.cc",
        "native/shared_salts.cc",
        "native/thread_poll.cc",
        "native/socks5_front.cc",
        "native/app_conn.cc",
        "native/client_tunnel.cc",
        "native/client_bare.cc",
        "native/sched.cc",
        "native/idle_memory.cc"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc": ["-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "xcode_settings": {"GCC_SYMBOLS_PRIVATE_EXTERN": "YES", "OTHER_CFLAGS": ["-O2"]}
    }
  ]
}
