#!/usr/bin/env bash
# Installs the test suite's system and Python dependencies when they are missing (root, Debian).
set -euo pipefail

need_apt=()
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sshpass >/dev/null 2>&1 || need_apt+=(sshpass)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v sftp >/dev/null 2>&1 || need_apt+=(openssh-client)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
# test_x11_forwarding.py: the client side's X authority file (what OpenSSH's ssh -X reads); ssh-agent/ssh-add come with openssh-client.
command -v xauth >/dev/null 2>&1 || need_apt+=(xauth)
command -v busybox >/dev/null 2>&1 || [ -x /bin/busybox ] || need_apt+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
# test_network_isolation.py builds a network namespace with a veth pair (ip netns, ip link).
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# Berth's user network firewall (also a dependency of docker.io).
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need_apt+=(iptables)
[ -e /usr/include/crypt.h ] || need_apt+=(libcrypt-dev)
[ -e /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
# The SSH engine links the system libcrypto (Poly1305, modular exponentiation).
[ -e /usr/include/openssl/evp.h ] || need_apt+=(libssl-dev)
# Real clients of other families for the client matrix (tests/clients): dropbear's dbclient and
# dropbearconvert, PuTTY's plink/psftp/puttygen, curl with sftp:// (libssh2), JSch on a JDK
# (javac/source launcher compile the tiny client at test time).
command -v dbclient >/dev/null 2>&1 || need_apt+=(dropbear-bin)
command -v plink >/dev/null 2>&1 && command -v psftp >/dev/null 2>&1 || need_apt+=(putty-tools)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
[ -e /usr/share/java/jsch.jar ] || need_apt+=(libjsch-java)
command -v javac >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
# Packaging (tests/packaging): the man page from --help, and Compose v1 from Debian to validate
# and run deploy/compose (Debian has no compose v2 plugin).
command -v help2man >/dev/null 2>&1 || need_apt+=(help2man)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
# The operator console (tests/integration/test_console.py): xterm.js served from disk, and real
# headless Chromium driven by selenium.
[ -e /usr/share/javascript/xterm/xterm.js ] || need_apt+=(libjs-xterm)
# Debian 12's libjs-xterm has no browser build of xterm.js; the console joins node-xterm's modules.
[ -e /usr/share/nodejs/xterm/lib/public/Terminal.js ] || need_apt+=(node-xterm)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
    mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
    echo "installing with apt-get: ${need_apt[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_apt[@]}"
fi

need_pip=()
python3 -c 'import pytest' 2>/dev/null || need_pip+=(pytest)
python3 -c 'import paramiko' 2>/dev/null || need_pip+=(paramiko)
python3 -c 'import asyncssh' 2>/dev/null || need_pip+=(asyncssh)
python3 -c 'import prometheus_client' 2>/dev/null || need_pip+=(prometheus_client)
python3 -c 'import cbor2' 2>/dev/null || need_pip+=(cbor2)
python3 -c 'import moto.server, boto3' 2>/dev/null || need_pip+=("moto[server]" boto3)
python3 -c 'import asciinema' 2>/dev/null || need_pip+=(asciinema)
python3 -c 'import selenium' 2>/dev/null || need_pip+=(selenium)
# Client matrix: ssh-audit (algorithm/strict-kex audit) and ssh-python (libssh bindings).
command -v ssh-audit >/dev/null 2>&1 || need_pip+=(ssh-audit)
python3 -c 'import ssh' 2>/dev/null || need_pip+=(ssh-python)
# The test Kubernetes API server (aiohttp) and its checks with the official client. The pins keep
# the kubernetes client from upgrading python-dateutil/pydantic past what moto's botocore and
# aws-sam-translator accept.
python3 -c 'import aiohttp, kubernetes, websocket' 2>/dev/null || need_pip+=(aiohttp kubernetes websocket-client "python-dateutil<3" "pydantic<2.14")
# Ansible against the default guest image as the login user (tests/integration/test_login_user.py).
command -v ansible >/dev/null 2>&1 || need_pip+=(ansible-core)
if [ ${#need_pip[@]} -gt 0 ]; then
    echo "installing with pip: ${need_pip[*]}"
    python3 -m pip install -q "${need_pip[@]}"
fi
