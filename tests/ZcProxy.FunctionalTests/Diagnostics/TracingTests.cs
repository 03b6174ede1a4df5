using Microsoft.AspNetCore.Builder;
using System.Collections.Concurrent;
using System.Diagnostics;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Tests.Balancing;

namespace ZcProxy.Tests.Diagnostics;

/// <summary>
/// W3C trace context on both forwarding paths: with nothing listening, no Activity exists on the request path and the
/// client's traceparent reaches the upstream unchanged (the access log's $trace_id is its trace id); with a listener
/// on the "ZcProxy" source, each request gets a span, child of the client's, and the upstream's traceparent names it.
/// The listener is process-wide: while it is attached, every in-process proxy of every test makes a span per request
/// (allocations per request measured by other tests grow by the span's), and the no-listener test must not see it.
/// So these tests run alone, with the OTLP exporter's (<see cref="ProcessWideTelemetryCollection"/>).
/// </summary>
[Collection(ProcessWideTelemetryCollection.Name)]
public class TracingTests
{
    private const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736", ClientSpanId = "00f067aa0ba902b7";
    private const string ClientTraceParent = $"00-{TraceId}-{ClientSpanId}-01";
    private static readonly HttpClient Client = new();

    /// <summary>The traceparent headers the origin received, by path (Kestrel reuses its header objects after a request).</summary>
    private readonly ConcurrentDictionary<string, string[]> _seen = new();

    private async Task<(TestOrigin Origin, ConfigDirectory Dir, InProcessProxy Proxy, string Log)> StartAsync(bool zeroCopy)
    {
        var origin = await TestOrigin.StartAsync("A", app => app.Use((context, next) =>
        {
            _seen[context.Request.Path] = context.Request.Headers["traceparent"].ToArray()!;
            return next(context);
        }));
        var dir = new ConfigDirectory();
        var log = Path.Combine(dir.Root, "access.log");
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } }, "Clusters": { {{ConfigDirectory.Cluster("c", ("d1", origin.Url))}} } }
            """, $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "{{log}}", "Format": "$uri $trace_id" } """);
        return (origin, dir, await InProcessProxy.StartAsync(dir.MainFile), log);
    }

    private async Task<string> TraceParentSeenUpstreamAsync(InProcessProxy proxy, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url + path);
        request.Headers.TryAddWithoutValidation("traceparent", ClientTraceParent);
        (await Client.SendAsync(request)).EnsureSuccessStatusCode();
        return Assert.Single(_seen[path]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task NoListener_NoActivity_TraceparentReachesTheUpstreamUnchanged(bool zeroCopy)
    {
        var (origin, dir, proxy, log) = await StartAsync(zeroCopy);
        await using (origin)
        using (dir)
        await using (proxy)
        {
            Assert.False(ProxyTracing.Source.HasListeners());
            // An Activity on the request path would have replaced the span id with its own (both forwarders inject it).
            Assert.Equal(ClientTraceParent, await TraceParentSeenUpstreamAsync(proxy, "/plain"));
            PathAssert.ForwardedOn(proxy, zeroCopy);
            await Poll.UntilAsync(() => File.Exists(log) && File.ReadAllText(log).Contains("/plain "), "the access-log line");
            Assert.Contains($"/plain {TraceId}\n", File.ReadAllText(log));
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Listener_RequestSpan_IsTheClientsChild_AndTheUpstreamsParent(bool zeroCopy)
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ProxyTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        var (origin, dir, proxy, log) = await StartAsync(zeroCopy);
        await using (origin)
        using (dir)
        await using (proxy)
        {
            var upstream = await TraceParentSeenUpstreamAsync(proxy, "/traced");
            await Poll.UntilAsync(() => stopped.Any(a => (string?)a.GetTagItem("url.path") == "/traced"), "the request's span");
            var span = stopped.Single(a => (string?)a.GetTagItem("url.path") == "/traced");

            Assert.Equal(TraceId, span.TraceId.ToHexString());
            Assert.Equal(ClientSpanId, span.ParentSpanId.ToHexString());
            Assert.Equal(ActivityKind.Server, span.Kind);
            Assert.Equal($"00-{TraceId}-{span.SpanId.ToHexString()}-01", upstream); // the upstream's parent is ZcProxy's span
            Assert.Equal("GET r", span.DisplayName);
            Assert.Equal(("r", "c", "d1", 200), ((string?)span.GetTagItem("http.route"), (string?)span.GetTagItem("zcproxy.cluster"),
                (string?)span.GetTagItem("zcproxy.destination"), (int?)span.GetTagItem("http.response.status_code")));
            PathAssert.ForwardedOn(proxy, zeroCopy);
            await Poll.UntilAsync(() => File.Exists(log) && File.ReadAllText(log).Contains("/traced "), "the access-log line");
            Assert.Contains($"/traced {TraceId}\n", File.ReadAllText(log));
        }
    }
}
