namespace ZcProxy.Core.Configuration;

/// <summary>ZcProxy's own config sections (everything in the main file but ReverseProxy and Include).</summary>
internal sealed record ZcProxyOptions
{
    public IReadOnlyList<ListenerOptions> Listen { get; init; } = [new ListenerOptions { Url = "http://127.0.0.1:8080" }];
    public AdminOptions? Admin { get; init; }
    public ZeroCopyOptions ZeroCopy { get; init; } = new();
    public CacheOptions? Cache { get; init; }
    public AccessLogOptions AccessLog { get; init; } = new();
    public DemoOptions? Demo { get; init; }
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public ClientLimits Limits { get; init; } = new();
    /// <summary>TCP stream proxies by name (nginx <c>stream { server { listen ...; proxy_pass ...; } }</c>), hot-reloaded.</summary>
    public IReadOnlyDictionary<string, StreamOptions> Streams { get; init; } = new Dictionary<string, StreamOptions>();
    /// <summary>Destinations from a registry, merged with the files' (see Discovery/).</summary>
    public DiscoveryOptions? Discovery { get; init; }
    /// <summary>Named request rate limits that routes name in their RateLimiterPolicy (nginx limit_req_zone / limit_conn_zone).</summary>
    public IReadOnlyDictionary<string, RateLimitOptions> RateLimits { get; init; } = new Dictionary<string, RateLimitOptions>();
    /// <summary>
    /// Pages for the errors ZcProxy answers itself, by status (nginx <c>error_page</c>): "502 503 504" → a file relative to the
    /// main file, or "text:..." (see Output/ErrorPages.cs).
    /// </summary>
    public IReadOnlyDictionary<string, string> ErrorPages { get; init; } = new Dictionary<string, string>();
    /// <summary>Exporters of spans and metrics to an OpenTelemetry collector; none by default (Diagnostics/OtlpExport.cs).</summary>
    public TelemetryOptions? Telemetry { get; init; }
}

internal sealed record TelemetryOptions
{
    public OtlpOptions? Otlp { get; init; }
}

/// <summary>
/// Push ZcProxy's request spans and metrics to an OpenTelemetry collector over OTLP. Set at start: a reload that changes
/// it is logged as needing a restart.
/// </summary>
internal sealed record OtlpOptions
{
    /// <summary>The collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT: http/protobuf appends /v1/traces and /v1/metrics.</summary>
    public string Endpoint { get; init; } = "http://127.0.0.1:4318";
    /// <summary>"http/protobuf" (default, port 4318) or "grpc" (port 4317).</summary>
    public string Protocol { get; init; } = "http/protobuf";
    /// <summary>Export the request spans (ActivitySource "ZcProxy").</summary>
    public bool Traces { get; init; } = true;
    /// <summary>Export the metrics: every /metrics family of ZcProxy (meter "ZcProxy"), the runtime's and Kestrel's meters.</summary>
    public bool Metrics { get; init; } = true;
    /// <summary>Sent with every export (e.g. an Authorization or tenant header the collector requires).</summary>
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();
    /// <summary>Share of new traces recorded, 0 to 1; a request whose traceparent carries a sampling decision follows it.</summary>
    public double SampleRatio { get; init; } = 1.0;
    /// <summary>How often metrics are pushed (OTEL_METRIC_EXPORT_INTERVAL; the SDK's default is 60 s).</summary>
    public TimeSpan MetricsInterval { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>The service.name resource attribute spans and metrics carry.</summary>
    public string ServiceName { get; init; } = "zcproxy";
    /// <summary>Each export fails after this long (OTEL_EXPORTER_OTLP_TIMEOUT).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// One rate-limit policy: a limiter of System.Threading.RateLimiting per key (client address, header value or route).
/// Kinds: TokenBucket (Limit tokens added every Per, room for Limit + Burst), FixedWindow and SlidingWindow (Limit
/// requests per Per; the sliding window in Segments steps), Concurrency (Limit requests in progress at once).
/// </summary>
internal sealed record RateLimitOptions
{
    public string Kind { get; init; } = "TokenBucket";
    /// <summary>"ClientIp" (default), "Header:NAME" (requests without the header are not limited, as nginx skips an empty key) or "Route".</summary>
    public string Key { get; init; } = "ClientIp";
    public int Limit { get; init; }
    public TimeSpan Per { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>TokenBucket: requests allowed beyond the rate at once (nginx limit_req burst ... nodelay).</summary>
    public int Burst { get; init; }
    /// <summary>Requests that wait for a permit instead of being refused at once (nginx's burst without nodelay delays them).</summary>
    public int Queue { get; init; }
    /// <summary>SlidingWindow: the window moves in this many steps.</summary>
    public int Segments { get; init; } = 10;
    /// <summary>The status of a refused request (nginx limit_req_status); 429 by default.</summary>
    public int Status { get; init; } = 429;
}

internal sealed record DiscoveryOptions
{
    public EtcdDiscoveryOptions? Etcd { get; init; }
    /// <summary>Per cluster id: its destinations from DNS (SRV, or A/AAAA with a port), re-resolved every Interval.</summary>
    public IReadOnlyDictionary<string, DnsDiscoveryOptions> Dns { get; init; } = new Dictionary<string, DnsDiscoveryOptions>();
}

/// <summary>"_http._tcp.api.internal" (SRV: port, weight, priority from the records) or "api.internal" with a Port (A/AAAA).</summary>
internal sealed record DnsDiscoveryOptions
{
    public required string Name { get; init; }
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Required for A/AAAA names; SRV records carry their own.</summary>
    public int? Port { get; init; }
    public string Scheme { get; init; } = "http";
    /// <summary>"IP" or "IP:port" of the resolver to ask; default: the system's (/etc/resolv.conf).</summary>
    public string? Server { get; init; }
}

/// <summary>
/// Keys {Prefix}clusters/{ClusterId}/destinations/{DestinationId} hold destination JSON; watched, merged with the
/// files' destinations of that cluster.
/// </summary>
internal sealed record EtcdDiscoveryOptions
{
    public IReadOnlyList<string> Endpoints { get; init; } = ["http://127.0.0.1:2379"];
    public string Prefix { get; init; } = "/zcproxy/";
    /// <summary>Each request to etcd (the first read, the liveness probe) fails after this long.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>While watching, etcd is probed this often: a partition that sends no FIN shows as stale within about this.</summary>
    public TimeSpan ProbeInterval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Reconnects back off exponentially from 100 ms up to this.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>Client-side limits (nginx: client_max_body_size, keepalive_timeout, client_header_timeout...).</summary>
internal sealed record ClientLimits
{
    /// <summary>Largest request body accepted (413 above it); 0 means unlimited. Routes may override with MaxRequestBodySize.</summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long MaxRequestBodySize { get; init; } = 100L << 20;
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long MaxRequestHeadersSize { get; init; } = 32 * 1024;
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(75);
    public TimeSpan RequestHeadersTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// nginx's lingering_close: "on" (default) reads and drops what a client still sends after the connection's last
    /// response when it may still be sending (an unread request body, unread bytes), so that the close does not reset
    /// the connection under the response; "always" does so for every close; "off" closes at once.
    /// </summary>
    public string LingeringClose { get; init; } = LingeringOn;
    /// <summary>nginx's lingering_time: the longest a lingering close reads before it closes.</summary>
    public TimeSpan LingeringTime { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>nginx's lingering_timeout: a lingering close ends when the client sends nothing for this long.</summary>
    public TimeSpan LingeringTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Open client connections per process; 0 means unlimited.</summary>
    public long MaxConnections { get; init; }
    /// <summary>Open proxy connections per client address (nginx limit_conn on $binary_remote_addr); 0 means unlimited. Reloadable.</summary>
    public int MaxConnectionsPerClient { get; init; }

    public const string LingeringOn = "on", LingeringOff = "off", LingeringAlways = "always";
}

internal sealed record ListenerOptions
{
    public required string Url { get; init; }
    /// <summary>PEM certificate (leaf first, then its chain) for https listeners: the default one when SNI picks none.</summary>
    public string? Certificate { get; init; }
    /// <summary>PEM private key for <see cref="Certificate"/>; omit when the certificate file holds the key.</summary>
    public string? CertificateKey { get; init; }
    /// <summary>More certificates, chosen by the client's SNI name (nginx: one server block per name, each with ssl_certificate).</summary>
    public IReadOnlyList<CertificateOptions> Certificates { get; init; } = [];
    /// <summary>"1.2" (default) or "1.3": the oldest TLS version offered (nginx ssl_protocols).</summary>
    public string? MinTlsVersion { get; init; }
    /// <summary>IANA cipher suite names offered, e.g. "TLS_AES_128_GCM_SHA256" (nginx ssl_ciphers); empty: OpenSSL's defaults.</summary>
    public IReadOnlyList<string> CipherSuites { get; init; } = [];
    /// <summary>"off" (default), "optional" or "required" (nginx ssl_verify_client).</summary>
    public string? ClientCertificate { get; init; }
    /// <summary>PEM file of the CA certificates client certificates must chain to (nginx ssl_client_certificate).</summary>
    public string? ClientCa { get; init; }
    /// <summary>Fetch and staple OCSP responses (nginx ssl_stapling); needs the responder to be reachable.</summary>
    public bool OcspStapling { get; init; }
    /// <summary>"Http1", "Http2" or "Http1AndHttp2"; https listeners default to Http1AndHttp2 (ALPN), http ones to Http1.</summary>
    public string? Protocols { get; init; }
}

/// <summary>One SNI certificate of an https listener.</summary>
internal sealed record CertificateOptions
{
    public required string Certificate { get; init; }
    public string? CertificateKey { get; init; }
    /// <summary>Server names it is chosen for ("a.example", "*.a.example"); empty: the DNS names the certificate itself holds.</summary>
    public IReadOnlyList<string> Hosts { get; init; } = [];
}

internal sealed record AdminOptions
{
    public required string Url { get; init; }
    /// <summary>Bearer token every mutating admin request must carry (prefer <see cref="TokenFile"/>: config files get shared).</summary>
    public string? Token { get; init; }
    /// <summary>File holding the token (surrounding whitespace ignored), relative to the main file; read on every use.</summary>
    public string? TokenFile { get; init; }
}

internal sealed record ZeroCopyOptions
{
    public bool Enabled { get; init; } = true;
    /// <summary>Bodies at least this long (Content-Length) are spliced, responses (upstream → client) and uploads (client → upstream); smaller ones are copied.</summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long SpliceThreshold { get; init; } = 64 * 1024;
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan ResponseHeadTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public TimeSpan BodyIdleTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>A spliced request body whose client sends nothing for this long gets 408 (nginx client_body_timeout).</summary>
    public TimeSpan ClientBodyTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public int MaxIdleConnectionsPerDestination { get; init; } = 64;
    public TimeSpan IdleConnectionTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// Pipe size of relays (TCP streams, upgraded connections): a power of two from 64 KiB, capped at fs.pipe-max-size;
    /// read at start. Larger pipes cost the proxy fewer calls per byte and shift work onto its peers (docs/transport.md).
    /// </summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long RelayPipeSize { get; init; } = Transport.PipeBudget.DefaultRelayPipeSize;
    /// <summary>
    /// The size a relay direction's pipe grows to once it moved 4 MiB (a long transfer), within an eighth of the pipe
    /// quota; at most RelayPipeSize: pipes never grow. A power of two from 64 KiB, capped at fs.pipe-max-size; read at start.
    /// </summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long RelayPipeGrowSize { get; init; } = Transport.PipeBudget.DefaultRelayPipeGrowSize;
    /// <summary>
    /// At most this many bytes a relay (TCP streams, upgraded connections) has written to a socket wait there unsent
    /// (TCP_NOTSENT_LOWAT on both of its sockets); the rest waits in the relay's pipe, and the relay is woken to send more
    /// when the socket's unsent bytes fall below half of it. 0: the kernel's default (the socket takes up to its send
    /// buffer, megabytes). Read at each relay's start. Why 64 KiB: docs/transport.md, "Unsent bytes of a relay".
    /// </summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long RelaySendLowWatermark { get; init; } = Transport.Relay.SpliceRelay.DefaultSendLowWatermark;
    /// <summary>
    /// Who serves HTTP/1.1 on the zero-copy listeners: "own" (default: ZcProxy's connection layer for the plain,
    /// well-formed case, handing anything else to Kestrel; docs/transport.md) or "kestrel" (Kestrel's HTTP/1.x layer for
    /// every request). Read at start.
    /// </summary>
    public string Http1 { get; init; } = Http1Default;

    public const string Http1Kestrel = "kestrel";
    public const string Http1Own = "own";
    public const string Http1Default = Http1Own;

    /// <summary>True when ZcProxy's own HTTP/1.1 layer serves the zero-copy listeners.</summary>
    public bool OwnHttp1 => Enabled && string.Equals(Http1, Http1Own, StringComparison.Ordinal);
}

internal sealed record CacheOptions
{
    public required string Path { get; init; }
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long MaxSize { get; init; } = 10L << 30;
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long DirectIoThreshold { get; init; } = 4L << 20;
    /// <summary>"residency" (default): O_DIRECT only for hits of at least DirectIoThreshold that are not in the page cache; "threshold": for every such hit; "off": never.</summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(DirectIoModeJsonConverter))] public Output.DirectIoMode DirectIo { get; init; } = Output.DirectIoMode.Residency;
    public TimeSpan Inactive { get; init; } = TimeSpan.FromMinutes(10);
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long MaxEntrySize { get; init; } = 1L << 30;
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long MinFreeDisk { get; init; } = 100L << 20;
    /// <summary>nginx's slice: Range requests fetch and store aligned slices of this size (upstream Range requests); 0 (default): off.</summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long SliceSize { get; init; }
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>
    /// Entry files kept open, with their verified heads, for the next hits (nginx open_file_cache max=): a hit on one opens
    /// and reads nothing before sending; beyond this many, the least recently used is closed. 0: every hit opens its file.
    /// </summary>
    public int OpenFiles { get; init; } = 1000;
    /// <summary>Cache key template; placeholders {scheme}, {host}, {uri} (path + query), {path}, {query}, {method}.</summary>
    public string Key { get; init; } = "{scheme}://{host}{uri}";
    /// <summary>Request methods looked up in the cache (responses are stored from GET only; HEAD is answered from a stored GET).</summary>
    public IReadOnlyList<string> Methods { get; init; } = ["GET", "HEAD"];
    /// <summary>Response status codes that may be stored; empty (the default) leaves it to RFC 9111 (any final status but 206 and 304).</summary>
    public IReadOnlyList<int> Statuses { get; init; } = [];
    /// <summary>The cache sharded across a fleet: each key has one owner node (see Caching/Peers/).</summary>
    public CachePeersOptions? Peers { get; init; }
}

/// <summary>
/// "Self" is this node's proxy URL as the other nodes reach it; "Nodes" every node's (Self included), or empty when the
/// list comes from etcd ({Discovery.Etcd.Prefix}peers/{name}).
/// </summary>
internal sealed record CachePeersOptions
{
    public required string Self { get; init; }
    public IReadOnlyList<string> Nodes { get; init; } = [];
    /// <summary>A connect to the owner that takes longer fails; its keys then go to the next node (or the origin).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>A node whose connect failed is skipped for this long (nginx fail_timeout).</summary>
    public TimeSpan FailTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

internal sealed record AccessLogOptions
{
    /// <summary>"stdout" (default), "off", or a file path.</summary>
    public string Path { get; init; } = "stdout";

    /// <summary>"main" (default: combined + upstream, times, cache status), "combined", "json", or a template with $variables.</summary>
    public string Format { get; init; } = "main";
}

/// <summary>Built-in demo origins so the shipped config works on a fresh machine. Production configs omit it.</summary>
internal sealed record DemoOptions
{
    public IReadOnlyList<string> Origins { get; init; } = ["http://127.0.0.1:8081", "http://127.0.0.1:8082"];
    [System.Text.Json.Serialization.JsonConverter(typeof(ByteSizeJsonConverter))] public long LargeFileSize { get; init; } = 16L << 20;
}
