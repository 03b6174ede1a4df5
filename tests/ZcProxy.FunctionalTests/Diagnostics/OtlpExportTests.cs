using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using ZcProxy.Tests.Balancing;

namespace ZcProxy.Tests.Diagnostics;

/// <summary>
/// The exporter (and TracingTests' ActivityListener) attach process-wide listeners to the "ZcProxy" source and meter:
/// every in-process proxy of the run is seen, and makes spans, while they are attached. These tests run alone.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideTelemetryCollection
{
    public const string Name = "process-wide telemetry listeners";
}

/// <summary>
/// "Telemetry": { "Otlp": ... } pushes the request spans and the metrics to a collector: a fake OTLP receiver (Kestrel on
/// port 0) gets protobuf exports naming the route, over http/protobuf (POST /v1/traces, /v1/metrics) and gRPC, with the
/// configured headers; without the section nothing listens.
/// </summary>
[Collection(ProcessWideTelemetryCollection.Name)]
public class OtlpExportTests
{
    private const string RouteId = "otel-route-7f3a";
    private static readonly HttpClient Client = new();

    private static string ProxyConfig(string originUrl, bool zeroCopy, string otlp) => $$"""
        {
          "Listen": [ { "Url": "http://127.0.0.1:0" } ],
          "Admin": { "Url": "http://127.0.0.1:0" },
          "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} },
          "AccessLog": { "Path": "off" },
          {{otlp}}
          "ReverseProxy": {
            "Routes": { "{{RouteId}}": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
            "Clusters": { {{ConfigDirectory.Cluster("c", ("d1", originUrl))}} }
          }
        }
        """;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task HttpProtobuf_SpansAndMetricsReachTheCollector_WithTheConfiguredHeaders(bool zeroCopy)
    {
        await using var origin = await TestOrigin.StartAsync("A");
        await using var collector = await FakeOtlpCollector.StartAsync(grpc: false);
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, ProxyConfig(origin.Url, zeroCopy, $$"""
            "Telemetry": { "Otlp": { "Endpoint": "{{collector.Url}}/", "Protocol": "http/protobuf", "Headers": { "X-Scope-OrgID": "tenant 1=a%b" } } },
            """));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        for (int i = 0; i < 3; i++) (await Client.GetAsync(proxy.Url + "/traced")).EnsureSuccessStatusCode();
        PathAssert.ForwardedOn(proxy, zeroCopy);
        proxy.Get<TracerProvider>().ForceFlush();
        proxy.Get<MeterProvider>().ForceFlush();

        var span = await collector.WaitForAsync("/v1/traces", "GET " + RouteId);
        Assert.Equal("application/x-protobuf", span.ContentType);
        Assert.Equal("tenant 1=a%b", span.Headers["X-Scope-OrgID"]); // spaces, = and % arrive as written
        Assert.True(Contains(span.Body, "/traced"), "the span's url.path");
        Assert.True(Contains(span.Body, "zcproxy"), "the service.name resource");

        var metrics = await collector.WaitForAsync("/v1/metrics", "zcproxy_request_duration_seconds", must: RouteId);
        Assert.Equal("application/x-protobuf", metrics.ContentType);
        Assert.True(Contains(metrics.Body, "zcproxy_upstream_response_duration_seconds"), "the upstream timing histogram");
        Assert.True(Contains(metrics.Body, "zcproxy_requests_total"), "the status-class counter");
        Assert.True(Contains(metrics.Body, "zcproxy_body_bytes_total"), "the body-bytes counter");
    }

    [Fact]
    public async Task Grpc_SpansReachTheCollectorsTraceService()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        await using var collector = await FakeOtlpCollector.StartAsync(grpc: true);
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, ProxyConfig(origin.Url, zeroCopy: true, $$"""
            "Telemetry": { "Otlp": { "Endpoint": "{{collector.Url}}", "Protocol": "grpc", "Metrics": false } },
            """));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        (await Client.GetAsync(proxy.Url + "/traced")).EnsureSuccessStatusCode();
        proxy.Get<TracerProvider>().ForceFlush();

        var span = await collector.WaitForAsync(FakeOtlpCollector.GrpcTraceExport, "GET " + RouteId);
        Assert.StartsWith("application/grpc", span.ContentType, StringComparison.Ordinal);
        Assert.Null(proxy.Services.GetService<MeterProvider>()); // "Metrics": false
    }

    [Fact]
    public async Task SampleRatioZero_RecordsNoSpan_ButMetricsStillFlow()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        await using var collector = await FakeOtlpCollector.StartAsync(grpc: false);
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, ProxyConfig(origin.Url, zeroCopy: true, $$"""
            "Telemetry": { "Otlp": { "Endpoint": "{{collector.Url}}", "SampleRatio": 0 } },
            """));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        (await Client.GetAsync(proxy.Url + "/unsampled")).EnsureSuccessStatusCode();
        proxy.Get<TracerProvider>().ForceFlush();
        proxy.Get<MeterProvider>().ForceFlush();
        await collector.WaitForAsync("/v1/metrics", "zcproxy_request_duration_seconds", must: RouteId);
        Assert.DoesNotContain(collector.Received, r => Contains(r.Body, "/unsampled"));
    }

    [Fact]
    public async Task NoTelemetrySection_NoProviderAndNothingListens()
    {
        await using var origin = await TestOrigin.StartAsync("A");
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, ProxyConfig(origin.Url, zeroCopy: true, ""));
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        (await Client.GetAsync(proxy.Url + "/x")).EnsureSuccessStatusCode();
        Assert.Null(proxy.Services.GetService<TracerProvider>());
        Assert.Null(proxy.Services.GetService<MeterProvider>());
        Assert.False(Core.Diagnostics.ProxyTracing.Source.HasListeners()); // so RequestSpanMiddleware creates no Activity
    }

    private static bool Contains(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;

    /// <summary>An OTLP receiver that keeps every export it is sent (path, content type, headers, body) and answers success.</summary>
    private sealed class FakeOtlpCollector : IAsyncDisposable
    {
        public const string GrpcTraceExport = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
        private readonly WebApplication _app;

        private FakeOtlpCollector(WebApplication app) => _app = app;

        public string Url { get; private set; } = "";
        public ConcurrentQueue<Export> Received { get; } = new();

        public sealed record Export(string Path, string? ContentType, Dictionary<string, string> Headers, byte[] Body);

        public static async Task<FakeOtlpCollector> StartAsync(bool grpc)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            // gRPC is HTTP/2; on http:// that is prior knowledge (h2c), which an HTTP/2-only endpoint speaks.
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, lo => lo.Protocols = grpc ? HttpProtocols.Http2 : HttpProtocols.Http1));
            var app = builder.Build();
            var collector = new FakeOtlpCollector(app);
            app.Run(async context =>
            {
                using var body = new MemoryStream();
                await context.Request.Body.CopyToAsync(body);
                collector.Received.Enqueue(new Export(context.Request.Path, context.Request.ContentType,
                    context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase), body.ToArray()));
                if (grpc)
                {
                    // One length-prefixed message: an empty Export*ServiceResponse; then grpc-status 0 in the trailers.
                    context.Response.ContentType = "application/grpc";
                    await context.Response.Body.WriteAsync(new byte[5]);
                    context.Response.AppendTrailer("grpc-status", "0");
                }
                else
                {
                    context.Response.ContentType = "application/x-protobuf"; // an empty Export*ServiceResponse
                }
            });
            await app.StartAsync();
            collector.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return collector;
        }

        /// <summary>The first export to <paramref name="path"/> holding <paramref name="text"/> (and <paramref name="must"/>).</summary>
        public async Task<Export> WaitForAsync(string path, string text, string? must = null)
        {
            Export? found = null;
            await Poll.UntilAsync(() => (found = Received.FirstOrDefault(r => r.Path == path && Contains(r.Body, text) && (must is null || Contains(r.Body, must)))) is not null,
                $"an export to {path} holding '{text}' (received: {string.Join(", ", Received.Select(r => r.Path))})");
            return found!;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}
