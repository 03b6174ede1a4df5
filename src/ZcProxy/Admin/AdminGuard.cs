using System.Net;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Admin;

/// <summary>
/// The admin listener's guard for every request that changes something (any method but GET, HEAD and OPTIONS):
/// purge today, destination drain/disable/enable/weight later. Mounted once in front of the admin endpoints, so an
/// endpoint added later cannot forget it.
/// <list type="number">
/// <item>Browser requests from another site are refused (403): <c>Sec-Fetch-Site: cross-site</c> or <c>same-site</c>
/// (another port of the same host is same-site), or an <c>Origin</c> other than the listener's own. The own origin
/// is <c>http://ADDRESS:PORT</c> of the socket the request came in on (or <c>localhost:PORT</c> on loopback), never
/// taken from the Host header, so a hostile DNS name pointed at the admin address (DNS rebinding) is refused too.
/// Non-browser clients (curl) send neither header and pass.</item>
/// <item>When <c>Admin.Token</c>/<c>TokenFile</c> is set, <c>Authorization: Bearer TOKEN</c> is required (401), compared in
/// constant time. The token is read from the options in force (a reload changes it) and the file on every request
/// (rotating the file takes effect at once).</item>
/// </list>
/// </summary>
internal sealed partial class AdminGuard(RequestDelegate next, RuntimeOptions runtime, FileConfigProvider config, ILogger<AdminGuard> log)
{
    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || HttpMethods.IsOptions(request.Method))
            return next(context);

        if (CrossSite(context) is { } why)
        {
            LogRefused(request.Method, request.Path, context.Connection.RemoteIpAddress, why);
            return RefuseAsync(context, StatusCodes.Status403Forbidden, $"cross-site admin requests are refused ({why})");
        }

        var admin = runtime.Current.Admin;
        var token = AdminToken.Resolve(admin, config.MainFile, out var error);
        if (error is not null)
        {
            // Configured but unusable (the file vanished or emptied since check): fail closed.
            LogTokenUnusable(error);
            return RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, "the admin token is configured but cannot be read; see the log");
        }
        if (token is not null && !AdminToken.Presented(request.Headers.Authorization, token))
        {
            LogRefused(request.Method, request.Path, context.Connection.RemoteIpAddress, "missing or wrong bearer token");
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"zcproxy-admin\"";
            return RefuseAsync(context, StatusCodes.Status401Unauthorized, "this admin endpoint needs Authorization: Bearer <Admin token>");
        }
        return next(context);
    }

    /// <summary>Why the request comes from another site, or null when it does not.</summary>
    private static string? CrossSite(HttpContext context)
    {
        var site = context.Request.Headers["Sec-Fetch-Site"].ToString();
        if (site.Equals("cross-site", StringComparison.OrdinalIgnoreCase) || site.Equals("same-site", StringComparison.OrdinalIgnoreCase))
            return $"Sec-Fetch-Site: {site}";
        var origins = context.Request.Headers.Origin;
        if (origins.Count == 0) return null;
        return origins.Count == 1 && IsOwnOrigin(origins[0], context) ? null : $"Origin: {origins}";
    }

    /// <summary>http://ADDRESS:PORT of the connection's local end, or http://localhost:PORT when that is a loopback address.</summary>
    private static bool IsOwnOrigin(string? origin, HttpContext context)
    {
        if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp
            || uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.UserInfo.Length > 0) return false;
        var local = context.Connection.LocalIpAddress;
        if (local is null || uri.Port != context.Connection.LocalPort) return false;
        if (local.IsIPv4MappedToIPv6) local = local.MapToIPv4();
        if (uri.HostNameType == UriHostNameType.Dns)
            return IPAddress.IsLoopback(local) && uri.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase);
        return IPAddress.TryParse(uri.Host, out var host) && host.Equals(local);
    }

    private static Task RefuseAsync(HttpContext context, int status, string error)
        => Results.Json(new { error }, statusCode: status).ExecuteAsync(context);

    [LoggerMessage(EventId = 7001, Level = LogLevel.Warning, Message = "admin {Method} {Path} from {Remote} refused: {Reason}")]
    private partial void LogRefused(string method, PathString path, IPAddress? remote, string reason);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Error, Message = "admin token unusable, mutating admin requests are refused: {Error}")]
    private partial void LogTokenUnusable(string error);
}
