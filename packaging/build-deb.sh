#!/usr/bin/env bash
# Builds packaging/out/zcproxy_<version>_amd64.deb: a self-contained linux-x64 publish (the .NET runtime travels
# inside the package, so an edge node needs no .NET install) laid out as
#   /usr/lib/zcproxy/            the published application
#   /usr/bin/zcproxy             symlink to /usr/lib/zcproxy/zcproxy (the apphost resolves its real path)
#   /lib/systemd/system/zcproxy.service                  (ZcProxy.service from the repo root)
#   /etc/zcproxy/zcproxy.json, /etc/zcproxy/routes.d/    conffiles (packaging/etc/)
#   /etc/logrotate.d/zcproxy                            conffile: rotates /var/log/zcproxy/*.log, SIGUSR1 reopens
#   /usr/share/doc/zcproxy/      README.md, examples/zcproxy.socket
# If the runtime pack cannot be restored, it falls back to a framework-dependent publish that Depends on
# aspnetcore-runtime-10.0 (Microsoft's package), and says so.
# Environment: VERSION (default: <Version> in Directory.Build.props, the one place the version is set; a VERSION given
# here is built into the binary too, so `zcproxy --version` always matches the package), OUT (default packaging/out).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=${VERSION:-$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/Directory.Build.props" | head -1)}
[ -n "$version" ] || { echo "build-deb: no <Version> in $repo/Directory.Build.props" >&2; exit 1; }
out=${OUT:-$repo/packaging/out}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Publish from a copy: a RID-specific restore rewrites obj/project.assets.json, which would disturb builds and
# test runs going on in the checkout.
mkdir -p "$work/src"
tar -C "$repo" --exclude=bin --exclude=obj -c src Directory.Build.props | tar -x -C "$work/src"
project=$work/src/src/ZcProxy/ZcProxy.csproj
publish=$work/publish
common=(-c Release -r linux-x64 -o "$publish" "-p:Version=$version" -p:DebugType=none -p:GenerateDocumentationFile=false -nologo -v:quiet)
mode=self-contained
depends="libc6, libgcc-s1, libstdc++6, libssl3 | libssl1.1, ca-certificates"
if ! dotnet publish "$project" "${common[@]}" --self-contained true >"$work/publish.log" 2>&1; then
  tail -20 "$work/publish.log" >&2
  echo "build-deb: WARNING: self-contained publish failed (is Microsoft.NETCore.App.Runtime.linux-x64 restorable?);" \
       "falling back to framework-dependent, Depends: aspnetcore-runtime-10.0" >&2
  mode=framework-dependent
  depends="aspnetcore-runtime-10.0, $depends"
  rm -rf "$publish"
  dotnet publish "$project" "${common[@]}" --self-contained false >"$work/publish.log" 2>&1 || { cat "$work/publish.log" >&2; exit 1; }
fi
[ -x "$publish/zcproxy" ] || { echo "build-deb: no apphost $publish/zcproxy" >&2; exit 1; }

root=$work/root
install -d "$root/usr/lib/zcproxy" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/zcproxy/routes.d" "$root/etc/logrotate.d" \
  "$root/usr/share/doc/zcproxy/examples" "$root/DEBIAN"
cp -a "$publish/." "$root/usr/lib/zcproxy/"
ln -s ../lib/zcproxy/zcproxy "$root/usr/bin/zcproxy"
install -m 644 "$repo/ZcProxy.service" "$root/lib/systemd/system/zcproxy.service"
install -m 644 "$repo/packaging/etc/zcproxy.json" "$root/etc/zcproxy/zcproxy.json"
install -m 644 "$repo/packaging/etc/routes.d/README" "$root/etc/zcproxy/routes.d/README"
install -m 644 "$repo/packaging/etc/logrotate.d/zcproxy" "$root/etc/logrotate.d/zcproxy"
install -m 644 "$repo/README.md" "$root/usr/share/doc/zcproxy/README.md"
install -m 644 "$repo/packaging/README.md" "$root/usr/share/doc/zcproxy/PACKAGING.md"
install -m 644 "$repo/packaging/zcproxy.socket" "$root/usr/share/doc/zcproxy/examples/zcproxy.socket"
install -m 755 "$repo/packaging/debian/postinst" "$repo/packaging/debian/prerm" "$repo/packaging/debian/postrm" "$root/DEBIAN/"
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) > "$root/DEBIAN/conffiles"
find "$root/usr/lib/zcproxy" -type f -exec chmod 644 {} + -o -type d -exec chmod 755 {} +
chmod 755 "$root/usr/lib/zcproxy/zcproxy"
find "$root/usr/lib/zcproxy" -name '*.so' -exec chmod 755 {} +

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: zcproxy
Version: $version
Architecture: amd64
Maintainer: ZcProxy maintainers <zcproxy@localhost>
Section: httpd
Priority: optional
Depends: $depends
Installed-Size: $size
Homepage: https://localhost/zcproxy
Description: nginx-style reverse proxy and load balancer with zero-copy data paths
 ZcProxy forwards HTTP with YARP over Kestrel and moves body bytes with splice(2)
 and sendfile(2) where it can. Runs as a systemd notify service with a watchdog,
 socket activation and journald-friendly logs. Build: $mode .NET publish.
CONTROL

mkdir -p "$out"
deb=$out/zcproxy_${version}_amd64.deb
# gzip: quick to build and readable by every dpkg; xz would save ~30% at many times the build time.
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "build-deb: $deb ($mode, $(du -h "$deb" | cut -f1))"
