using System.Net;

namespace ZcProxy.Hosting;

internal static partial class HostingLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "proxy listening on {Url}")]
    public static partial void ProxyListening(ILogger logger, string url);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "admin listening on http://{EndPoint}")]
    public static partial void AdminListening(ILogger logger, EndPoint endPoint);
}
