#!/usr/bin/env bash
# Builds the .deb (or takes one as $1), checks its contents with dpkg-deb, extracts it, runs `zcproxy check`
# from the extracted tree against the packaged config (with no .NET on PATH: the package must carry its runtime
# when it was built self-contained), and verifies the installed units. Exits non-zero on the first failure.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }

if [ $# -ge 1 ]; then deb=$1; else
  build_out=$(bash "$repo/packaging/build-deb.sh")
  echo "$build_out"
  deb=$(echo "$build_out" | sed -n 's/^build-deb: \(\S*\.deb\) .*/\1/p')
fi
[ -f "$deb" ] || fail "no package at '$deb'"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Contents.
dpkg-deb -c "$deb" > "$work/contents"
for path in ./usr/lib/zcproxy/zcproxy ./usr/lib/zcproxy/zcproxy.dll ./usr/lib/zcproxy/ZcProxy.Core.dll \
            ./usr/lib/zcproxy/Yarp.ReverseProxy.dll ./lib/systemd/system/zcproxy.service \
            ./etc/zcproxy/zcproxy.json ./etc/zcproxy/routes.d/README ./usr/share/doc/zcproxy/examples/zcproxy.socket; do
  grep -qE " $(printf '%s' "$path" | sed 's/\./\\./g')$" "$work/contents" || fail "$path missing from $(basename "$deb")"
done
grep -qE ' \./usr/bin/zcproxy -> \.\./lib/zcproxy/zcproxy$' "$work/contents" || fail "/usr/bin/zcproxy is not a symlink to ../lib/zcproxy/zcproxy"
grep -qE '^-rwxr-xr-x root/root .* \./usr/lib/zcproxy/zcproxy$' "$work/contents" || fail "apphost not root-owned 0755"
if grep -q "Build: self-contained" <(dpkg-deb -f "$deb" Description); then
  grep -qE ' \./usr/lib/zcproxy/libcoreclr\.so$' "$work/contents" || fail "self-contained package without libcoreclr.so"
  selfcontained=yes
else
  echo "test-deb: note: framework-dependent package (Depends: $(dpkg-deb -f "$deb" Depends))"
  selfcontained=no
fi
dpkg-deb -I "$deb" conffiles > "$work/conffiles"
diff <(printf '/etc/logrotate.d/zcproxy\n/etc/zcproxy/routes.d/README\n/etc/zcproxy/zcproxy.json\n') "$work/conffiles" || fail "conffiles differ"
[ "$(dpkg-deb -f "$deb" Package)" = zcproxy ] || fail "Package field"
dpkg-deb -I "$deb" postinst | grep -q 'useradd --system' || fail "postinst does not create the system user"
if dpkg-deb -I "$deb" postinst | grep -vE '^\s*#' | grep -qE 'systemctl (enable|start|restart)|deb-systemd-invoke'; then
  fail "postinst enables or starts the service"
fi
grep -q '"Demo"' <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/zcproxy/zcproxy.json) && fail "packaged config has a Demo section"
echo "test-deb: dpkg-deb -c/-I: $(wc -l < "$work/contents") entries, expected files, conffiles and maintainer scripts OK"

# 2. Extract and run `check` from the tree, against the packaged config.
x=$work/x
dpkg-deb -x "$deb" "$x"
env_for_run=(env -i "HOME=$work" "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
if [ $selfcontained = no ]; then env_for_run+=("PATH=$PATH"); fi
out=$("${env_for_run[@]}" "$x/usr/bin/zcproxy" check --config "$x/etc/zcproxy/zcproxy.json" 2>&1) || fail "zcproxy check on the packaged config: $out"
echo "$out" | grep -q '^configuration OK' || fail "unexpected check output: $out"
echo "test-deb: extracted zcproxy check: $out"
# One version: the binary says the version the package is named after.
package_version=$(dpkg-deb -f "$deb" Version)
out=$("${env_for_run[@]}" "$x/usr/bin/zcproxy" --version 2>&1) || fail "zcproxy --version: $out"
[ "$out" = "zcproxy $package_version" ] || fail "zcproxy --version says '$out', the package is $package_version"
echo "test-deb: extracted zcproxy --version: $out"
# ...and it rejects a broken one, naming file and JSON path (what ExecStartPre puts in the journal).
printf '{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "nope", "Match": { "Path": "/" } } } } }' > "$work/broken.json"
if out=$("${env_for_run[@]}" "$x/usr/bin/zcproxy" check --config "$work/broken.json" 2>&1); then fail "check accepted a broken config"; fi
echo "$out" | grep -q "broken.json: \$.ReverseProxy.Routes.r.ClusterId: cluster 'nope' is not defined" || fail "check output: $out"
echo "test-deb: extracted zcproxy check rejects a broken config: exit 1, $out"

# 3. The extracted binary serves (again without .NET on PATH) and a SIGTERM ends it with exit 0.
cat > "$work/serve.json" <<JSON
{ "Listen": [ { "Url": "http://127.0.0.1:0" } ], "Admin": { "Url": "http://127.0.0.1:0" },
  "ReverseProxy": { "Routes": {}, "Clusters": {} } }
JSON
"${env_for_run[@]}" "$x/usr/bin/zcproxy" --config "$work/serve.json" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 300); do grep -q "admin listening on" "$work/serve.log" && break; sleep 0.1; done
admin=$(sed -n 's/.*admin listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/serve.log" | head -1)
[ -n "$admin" ] || { kill "$serve_pid" 2>/dev/null; cat "$work/serve.log" >&2; fail "the extracted zcproxy did not start"; }
# bash's /dev/tcp instead of curl: one tool fewer to install on CI.
port=${admin##*:}
health=$( { exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && head -1 <&3 | cut -d' ' -f2; } 2>/dev/null ) || true
kill -TERM "$serve_pid"
rc=0; wait "$serve_pid" || rc=$?
[ "$health" = 200 ] || fail "GET $admin/healthz answered '$health'"
[ "$rc" = 0 ] || fail "SIGTERM exit code $rc"
echo "test-deb: extracted zcproxy served $admin/healthz (200) and exited 0 on SIGTERM"

# 4. The units as installed.
bash "$repo/packaging/verify-units.sh" "$x"
echo "test-deb: OK"
