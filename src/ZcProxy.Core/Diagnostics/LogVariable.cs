namespace ZcProxy.Core.Diagnostics;

/// <summary>The access log's variables, named as nginx's where nginx has them (see <see cref="LogVariables.ByName"/>).</summary>
internal enum LogVariable
{
    None,
    RemoteAddr, RemotePort, RemoteUser, TimeLocal, TimeIso8601, Msec,
    Request, RequestMethod, RequestUri, Uri, Args, ServerProtocol, Scheme, Host, ServerPort, RequestId,
    Status, BodyBytesSent, RequestTime, RequestLength,
    UpstreamAddr, UpstreamConnectTime, UpstreamHeaderTime, UpstreamResponseTime, UpstreamCacheStatus,
    HttpReferer, HttpUserAgent, RequestHeader, ResponseHeader,
    Route, Cluster, TraceId,
}

internal static class LogVariables
{
    public static readonly IReadOnlyDictionary<string, LogVariable> ByName = new Dictionary<string, LogVariable>(StringComparer.Ordinal)
    {
        ["remote_addr"] = LogVariable.RemoteAddr,
        ["remote_port"] = LogVariable.RemotePort,
        ["remote_user"] = LogVariable.RemoteUser,
        ["time_local"] = LogVariable.TimeLocal,
        ["time_iso8601"] = LogVariable.TimeIso8601,
        ["msec"] = LogVariable.Msec,
        ["request"] = LogVariable.Request,
        ["request_method"] = LogVariable.RequestMethod,
        ["request_uri"] = LogVariable.RequestUri,
        ["uri"] = LogVariable.Uri,
        ["args"] = LogVariable.Args,
        ["query_string"] = LogVariable.Args,
        ["server_protocol"] = LogVariable.ServerProtocol,
        ["scheme"] = LogVariable.Scheme,
        ["host"] = LogVariable.Host,
        ["server_port"] = LogVariable.ServerPort,
        ["request_id"] = LogVariable.RequestId,
        ["status"] = LogVariable.Status,
        ["body_bytes_sent"] = LogVariable.BodyBytesSent,
        ["request_time"] = LogVariable.RequestTime,
        ["request_length"] = LogVariable.RequestLength,
        ["upstream_addr"] = LogVariable.UpstreamAddr,
        ["upstream_connect_time"] = LogVariable.UpstreamConnectTime,
        ["upstream_header_time"] = LogVariable.UpstreamHeaderTime,
        ["upstream_response_time"] = LogVariable.UpstreamResponseTime,
        ["upstream_cache_status"] = LogVariable.UpstreamCacheStatus,
        ["http_referer"] = LogVariable.HttpReferer,
        ["http_user_agent"] = LogVariable.HttpUserAgent,
        ["route"] = LogVariable.Route,
        ["cluster"] = LogVariable.Cluster,
        ["trace_id"] = LogVariable.TraceId,
    };

    public static IEnumerable<string> Names => ByName.Keys;

    /// <summary>Written bare in the json format (a number, or null when absent).</summary>
    public static bool IsNumber(LogVariable v) => v is LogVariable.Status or LogVariable.BodyBytesSent or LogVariable.RequestTime or LogVariable.RequestLength
        or LogVariable.UpstreamConnectTime or LogVariable.UpstreamHeaderTime or LogVariable.UpstreamResponseTime
        or LogVariable.RemotePort or LogVariable.ServerPort or LogVariable.Msec;
}
