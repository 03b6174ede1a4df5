using System.Diagnostics;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// YARP's HttpClient replaces incoming trace headers with the current activity's (its ReverseProxyPropagator);
/// the zero-copy path does the same, so distributed traces look alike on both paths.
/// </summary>
internal static class TraceContext
{
    public static void Propagate(HttpRequestMessage message)
    {
        var activity = Activity.Current;
        if (activity is null) return;
        var propagator = DistributedContextPropagator.Current;
        foreach (var field in propagator.Fields) message.Headers.Remove(field);
        propagator.Inject(activity, message, static (carrier, name, value) =>
        {
            if (carrier is HttpRequestMessage m && value is not null) m.Headers.TryAddWithoutValidation(name, value);
        });
    }
}
