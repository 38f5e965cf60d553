{
  "targets": [
    {
      "target_name": "ccp_forwarder",
      "sources": ["forwarder.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "conditions": [["OS != 'linux'", { "type": "none" }]]
    },
    {
      "target_name": "ccp-jail",
      "type": "executable",
      "sources": ["jail.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "conditions": [["OS != 'linux'", { "type": "none" }]]
    }
  ]
}
