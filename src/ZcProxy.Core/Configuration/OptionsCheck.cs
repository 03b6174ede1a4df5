namespace ZcProxy.Core.Configuration;

/// <summary>
/// The main file's own sections (<see cref="ZcProxyOptions"/>), value by value: whatever the start would reject
/// (Kestrel's limits, listen URLs) or the runtime would misbehave on (a zero connect timeout fails every request, a
/// timeout beyond what a timer can run throws per request) is an error here, named by file and JSON path. The Cache
/// section's own rules are the cache's (CacheConfigCheck); what only the machine can tell (a busy port, permissions)
/// is the start's.
/// </summary>
internal static class OptionsCheck
{
    /// <summary>Demo origins write their /large file to /tmp at start: keep a typo from filling the disk.</summary>
    public const long MaxDemoLargeFileSize = 1L << 30;

    public static void Check(ZcProxyOptions options, string file, List<ConfigError> errors)
    {
        void Error(string path, string message) => errors.Add(new(file, path, message));

        CheckAddresses(options, file, errors);

        var zeroCopy = options.ZeroCopy;
        Timeout(zeroCopy.ConnectTimeout, "$.ZeroCopy.ConnectTimeout", Error);
        Timeout(zeroCopy.ResponseHeadTimeout, "$.ZeroCopy.ResponseHeadTimeout", Error);
        Timeout(zeroCopy.BodyIdleTimeout, "$.ZeroCopy.BodyIdleTimeout", Error);
        Timeout(zeroCopy.ClientBodyTimeout, "$.ZeroCopy.ClientBodyTimeout", Error);
        if (zeroCopy.MaxIdleConnectionsPerDestination < 0)
            Error("$.ZeroCopy.MaxIdleConnectionsPerDestination", "must not be negative (0 keeps no idle upstream connection)");
        // The kernel rounds a pipe up to a power of two pages (and accounts it so against the quota); below 64 KiB a pipe is not worth splicing through.
        if (zeroCopy.RelayPipeSize is < Transport.PipeBudget.KernelDefaultPipeSize or > Transport.PipeBudget.MaxConfigurablePipeSize || !long.IsPow2(zeroCopy.RelayPipeSize))
            Error("$.ZeroCopy.RelayPipeSize", $"must be a power of two from 64KiB to 64MiB, e.g. \"256KiB\" (was {zeroCopy.RelayPipeSize})");
        if (zeroCopy.RelayPipeGrowSize is < Transport.PipeBudget.KernelDefaultPipeSize or > Transport.PipeBudget.MaxConfigurablePipeSize || !long.IsPow2(zeroCopy.RelayPipeGrowSize))
            Error("$.ZeroCopy.RelayPipeGrowSize", $"must be a power of two from 64KiB to 64MiB, e.g. \"1MiB\"; at most RelayPipeSize keeps pipes from growing (was {zeroCopy.RelayPipeGrowSize})");
        if (zeroCopy.RelaySendLowWatermark != 0 && zeroCopy.RelaySendLowWatermark is < Transport.Relay.SpliceRelay.MinSendLowWatermark or > Transport.PipeBudget.MaxConfigurablePipeSize)
            Error("$.ZeroCopy.RelaySendLowWatermark", $"must be 0 (the kernel's default) or from 4KiB to 64MiB, e.g. \"64KiB\" (was {zeroCopy.RelaySendLowWatermark})");

        if (zeroCopy.Http1 is not (ZeroCopyOptions.Http1Kestrel or ZeroCopyOptions.Http1Own))
            Error("$.ZeroCopy.Http1", $"must be \"kestrel\" or \"own\" (was \"{zeroCopy.Http1}\")");

        var limits = options.Limits;
        // Kestrel refuses these at start; nginx's "keepalive_timeout 0" (no keep-alive) has no Kestrel equivalent.
        Timeout(limits.KeepAliveTimeout, "$.Limits.KeepAliveTimeout", Error);
        Timeout(limits.RequestHeadersTimeout, "$.Limits.RequestHeadersTimeout", Error);
        if (limits.LingeringClose is not (ClientLimits.LingeringOn or ClientLimits.LingeringOff or ClientLimits.LingeringAlways))
            Error("$.Limits.LingeringClose", $"must be \"on\", \"off\" or \"always\" (was \"{limits.LingeringClose}\")");
        Timeout(limits.LingeringTime, "$.Limits.LingeringTime", Error);
        Timeout(limits.LingeringTimeout, "$.Limits.LingeringTimeout", Error);
        if (limits.MaxRequestHeadersSize <= 0) Error("$.Limits.MaxRequestHeadersSize", "must be greater than zero");
        if (limits.MaxConnections < 0) Error("$.Limits.MaxConnections", "must not be negative (0 = unlimited)");

        // The host's drain runs on a timer too; 0 is allowed (stop without waiting).
        if (options.DrainTimeout > Duration.MaxTimeout) Error("$.DrainTimeout", $"must be at most {Duration.MaxTimeoutText}");

        if (options.AccessLog is { } accessLog && (string.IsNullOrWhiteSpace(accessLog.Path) || accessLog.Path.Contains('\0', StringComparison.Ordinal)))
            Error("$.AccessLog.Path", "must be \"stdout\", \"off\" or a file path");

        if (options.Cache is { } cache)
        {
            if (string.IsNullOrWhiteSpace(cache.Path)) Error("$.Cache.Path", "must name a directory");
            if (cache.MaxSize <= 0) Error("$.Cache.MaxSize", "must be greater than zero");
        }

        if (options.Discovery?.Etcd is { } etcd)
        {
            if (etcd.Endpoints.Count == 0) Error("$.Discovery.Etcd.Endpoints", "at least one etcd endpoint is required");
            for (int i = 0; i < etcd.Endpoints.Count; i++)
                if (!Uri.TryCreate(etcd.Endpoints[i], UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                    Error($"$.Discovery.Etcd.Endpoints[{i}]", $"'{etcd.Endpoints[i]}' is not an http:// or https:// URL such as \"http://127.0.0.1:2379\"");
            if (string.IsNullOrEmpty(etcd.Prefix) || !etcd.Prefix.StartsWith('/') || !etcd.Prefix.EndsWith('/'))
                Error("$.Discovery.Etcd.Prefix", $"'{etcd.Prefix}' must start and end with '/', e.g. \"/zcproxy/\"");
            Timeout(etcd.RequestTimeout, "$.Discovery.Etcd.RequestTimeout", Error);
            Timeout(etcd.ProbeInterval, "$.Discovery.Etcd.ProbeInterval", Error);
            Timeout(etcd.MaxBackoff, "$.Discovery.Etcd.MaxBackoff", Error);
        }

        foreach (var (clusterId, dns) in options.Discovery?.Dns ?? new Dictionary<string, DnsDiscoveryOptions>())
        {
            var at = $"$.Discovery.Dns.{clusterId}";
            if (string.IsNullOrWhiteSpace(dns.Name)) Error($"{at}.Name", "must name a DNS name, e.g. \"_http._tcp.api.internal\" (SRV) or \"api.internal\" with a Port");
            else if (!dns.Name.StartsWith('_') && dns.Port is null) Error($"{at}.Port", $"'{dns.Name}' is not an SRV name (_service._proto.name): A/AAAA records need a Port");
            if (dns.Port is < 1 or > 65535) Error($"{at}.Port", "must be between 1 and 65535");
            if (dns.Scheme is not ("http" or "https")) Error($"{at}.Scheme", "must be \"http\" or \"https\"");
            if (dns.Interval < TimeSpan.FromMilliseconds(100) || dns.Interval > Duration.MaxTimeout) Error($"{at}.Interval", $"must be between 100ms and {Duration.MaxTimeoutText}");
            if (dns.Server is not null && !System.Net.IPEndPoint.TryParse(dns.Server, out _)) Error($"{at}.Server", $"'{dns.Server}' is not an IP address or IP:port");
        }

        if (options.Demo is { } demo && demo.LargeFileSize > MaxDemoLargeFileSize)
            Error("$.Demo.LargeFileSize", $"must be at most {ByteSize.Format(MaxDemoLargeFileSize)} (the demo writes it to the temp folder)");
    }

    /// <summary>A timeout that a timer runs: above zero (zero would fail every request at once) and at most <see cref="Duration.MaxTimeout"/>.</summary>
    public static void Timeout(TimeSpan value, string path, Action<string, string> error)
    {
        if (value <= TimeSpan.Zero) error(path, "must be greater than zero");
        else if (value > Duration.MaxTimeout) error(path, $"must be at most {Duration.MaxTimeoutText}");
    }

    /// <summary>Listen, Admin and Demo URLs: well-formed, the right scheme, no address twice.</summary>
    private static void CheckAddresses(ZcProxyOptions options, string file, List<ConfigError> errors)
    {
        var taken = new Dictionary<string, string>();
        void Claim(ListenUrl url, string path)
        {
            if (url.Port == 0) return; // the OS picks a free port each time
            var key = $"{(url.IsLocalhost ? "localhost" : url.Address)}|{url.Port}";
            if (taken.TryGetValue(key, out var first)) errors.Add(new(file, path, $"this address is already used by {first}"));
            else taken[key] = path;
        }

        if (options.Listen.Count == 0) errors.Add(new(file, "$.Listen", "at least one listener is required"));
        for (int i = 0; i < options.Listen.Count; i++)
        {
            var path = $"$.Listen[{i}]";
            if (options.Listen[i] is not { } listen)
            {
                errors.Add(new(file, path, "must be an object such as { \"Url\": \"http://127.0.0.1:8080\" }"));
                continue;
            }
            if (!ListenUrl.TryParse(listen.Url, out var url, out var error))
            {
                errors.Add(new(file, path + ".Url", error));
                continue;
            }
            Claim(url!, path + ".Url");
            if (url!.IsHttps) Tls.ListenerTlsSettings.TryLoad(listen, file, path, errors);
            else
            {
                Tls.ListenerTlsSettings.CheckUnused(listen, file, path, errors);
                if (ListenerProtocols.Parse(listen.Protocols, https: false, out var protocolError) is null)
                    errors.Add(new(file, path + ".Protocols", protocolError));
            }
        }

        if (options.Admin is { } admin)
        {
            if (!ListenUrl.TryParse(admin.Url, out var url, out var error)) errors.Add(new(file, "$.Admin.Url", error));
            else if (url!.IsHttps) errors.Add(new(file, "$.Admin.Url", "the admin listener is plain http:// (keep it on a loopback or private address)"));
            else Claim(url, "$.Admin.Url");
        }

        if (options.Demo is { } demo)
            for (int i = 0; i < demo.Origins.Count; i++)
            {
                var path = $"$.Demo.Origins[{i}]";
                if (!ListenUrl.TryParse(demo.Origins[i], out var url, out var error)) errors.Add(new(file, path, error));
                else if (url!.IsHttps) errors.Add(new(file, path, "demo origins are plain http://"));
                else Claim(url, path);
            }
    }
}
