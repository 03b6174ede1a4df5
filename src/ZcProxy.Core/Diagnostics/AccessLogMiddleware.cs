using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// One line per request in nginx's "combined" format, followed by upstream address, request time,
/// upstream time and cache status; also counts zcproxy_requests_total by status code.
/// </summary>
internal sealed class AccessLogMiddleware(RequestDelegate next, AccessLogWriter writer, RequestMetrics metrics)
{
    public const string CacheStatusItem = "zcproxy.cache_status";

    public async Task InvokeAsync(HttpContext context)
    {
        long start = Stopwatch.GetTimestamp();
        var startTime = DateTimeOffset.UtcNow; // local time only when a line is written: DateTimeOffset.Now converts per call
        try
        {
            await next(context);
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(start);
            metrics.CountStatus(context.Response.StatusCode);
            var proxy = context.Features.Get<IReverseProxyFeature>();
            metrics.For(proxy?.Route.Config.RouteId ?? "", proxy?.Cluster?.Config.ClusterId ?? "").Duration.Observe(elapsed.TotalSeconds);
            if (writer.Enabled) writer.Write(Format(context, startTime.ToLocalTime(), elapsed));
        }
    }

    private static string Format(HttpContext context, DateTimeOffset startTime, TimeSpan elapsed)
    {
        var request = context.Request;
        var response = context.Response;
        var upstream = context.Features.Get<IReverseProxyFeature>()?.ProxiedDestination?.Model.Config.Address;
        var upstreamTime = context.Features.Get<UpstreamTiming>()?.ResponseSeconds is { } seconds
            ? seconds.ToString("0.000", CultureInfo.InvariantCulture) : "-";
        var cacheStatus = context.Items.TryGetValue(CacheStatusItem, out var c) && c is string s ? s : "-";
        // An upgraded connection's bytes are those its tunnel sent to the client (nginx's $body_bytes_sent does the same).
        var bytes = context.Features.Get<UpgradedConnection>() is { } upgraded ? upgraded.ResponseBytes.ToString(CultureInfo.InvariantCulture)
            : context.RequestAborted.IsCancellationRequested && !response.HasStarted ? "0"
            : response.ContentLength?.ToString(CultureInfo.InvariantCulture) ?? "-";

        var sb = new StringBuilder(256);
        sb.Append(context.Connection.RemoteIpAddress?.ToString() ?? "-").Append(" - - [")
          .Append(startTime.ToString("dd/MMM/yyyy:HH:mm:ss zzz", CultureInfo.InvariantCulture).Remove(24, 1)).Append("] \"")
          .Append(request.Method).Append(' ').Append(Sanitize(request.Path + request.QueryString)).Append(' ').Append(request.Protocol).Append("\" ")
          .Append(response.StatusCode).Append(' ').Append(bytes).Append(" \"")
          .Append(SanitizeHeader(request.Headers.Referer.ToString())).Append("\" \"")
          .Append(SanitizeHeader(request.Headers.UserAgent.ToString())).Append("\" upstream=")
          .Append(upstream ?? "-").Append(" rt=")
          .Append(elapsed.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture)).Append(" urt=").Append(upstreamTime)
          .Append(" cache=").Append(cacheStatus);
        return sb.ToString();
    }

    /// <summary>Request text is attacker-controlled: no quotes, control characters or newlines may reach the log.</summary>
    private static string Sanitize(string value)
    {
        var sb = new StringBuilder(value.Length);
        foreach (var ch in value)
        {
            if (ch == '"' || ch == '\\' || char.IsControl(ch)) sb.Append("\\x").Append(((int)ch).ToString("x2", CultureInfo.InvariantCulture));
            else sb.Append(ch);
        }
        return sb.ToString();
    }

    /// <summary>
    /// A header value holds one char per byte (HeaderEncoding): like nginx, every byte outside printable ASCII is
    /// logged as \xHH, so a UTF-8 User-Agent reads "caf\xC3\xA9" rather than as mojibake.
    /// </summary>
    private static string SanitizeHeader(string value)
    {
        if (value.Length == 0) return "-";
        var sb = new StringBuilder(value.Length);
        foreach (var ch in value)
        {
            if (ch is '"' or '\\' or < ' ' or >= (char)0x7F) sb.Append("\\x").Append(((int)ch).ToString("X2", CultureInfo.InvariantCulture));
            else sb.Append(ch);
        }
        return sb.ToString();
    }
}
