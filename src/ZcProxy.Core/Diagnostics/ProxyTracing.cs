using System.Diagnostics;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// ZcProxy's request spans: one <see cref="Activity"/> per proxied request from the <see cref="ActivitySource"/> named
/// <see cref="SourceName"/>, for an OpenTelemetry SDK (or any <see cref="ActivityListener"/>) to collect. Nothing is
/// created while nothing listens (<see cref="RequestSpanMiddleware"/>).
/// </summary>
internal static class ProxyTracing
{
    public const string SourceName = "ZcProxy";

    public static readonly ActivitySource Source = new(SourceName, typeof(ProxyTracing).Assembly.GetName().Version?.ToString(3));
}
