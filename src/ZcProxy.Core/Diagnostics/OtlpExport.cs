using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// The optional OpenTelemetry exporter (<c>"Telemetry": { "Otlp": { ... } }</c>): the OpenTelemetry SDK listens to
/// ZcProxy's request spans (<see cref="ProxyTracing"/>) and meters (<see cref="ProxyMetrics.MeterName"/>, with the
/// runtime's and Kestrel's) and pushes them over OTLP. Registered only when configured: without it nothing listens, so
/// no span is created and no histogram records into the meter (the Prometheus /metrics is unaffected either way).
/// Endpoint and headers come from the config file only, never from OTEL_* environment variables (the host reads no
/// environment configuration).
/// </summary>
internal static class OtlpExport
{
    public const string HttpProtobuf = "http/protobuf", Grpc = "grpc";

    public static IServiceCollection AddOtlpExport(this IServiceCollection services, OtlpOptions options)
    {
        if (!options.Traces && !options.Metrics) return services;
        var protocol = ParseProtocol(options.Protocol) ?? throw new ArgumentException($"unknown OTLP protocol '{options.Protocol}'", nameof(options));
        var telemetry = services.AddOpenTelemetry().ConfigureResource(r => r.AddService(options.ServiceName));
        if (options.Traces)
            telemetry.WithTracing(tracing => tracing
                .AddSource(ProxyTracing.SourceName)
                .SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(options.SampleRatio)))
                .AddOtlpExporter(o => Configure(o, options, protocol, "v1/traces")));
        if (options.Metrics)
            telemetry.WithMetrics(metrics => metrics
                .AddMeter(ProxyMetrics.MeterName, RuntimeMeters.RuntimeMeter, RuntimeMeters.KestrelMeter)
                .AddOtlpExporter((o, reader) =>
                {
                    Configure(o, options, protocol, "v1/metrics");
                    reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)options.MetricsInterval.TotalMilliseconds;
                    reader.PeriodicExportingMetricReaderOptions.ExportTimeoutMilliseconds = (int)options.Timeout.TotalMilliseconds;
                }));
        return services;
    }

    /// <summary>"http/protobuf" or "grpc" (OTEL_EXPORTER_OTLP_PROTOCOL's names, case-insensitive); null for anything else.</summary>
    public static OtlpExportProtocol? ParseProtocol(string? protocol)
        => string.Equals(protocol, HttpProtobuf, StringComparison.OrdinalIgnoreCase) ? OtlpExportProtocol.HttpProtobuf
            : string.Equals(protocol, Grpc, StringComparison.OrdinalIgnoreCase) ? OtlpExportProtocol.Grpc
            : null;

    /// <summary>Whether two settings export the same way (the record's own equality compares Headers by reference).</summary>
    public static bool SameSettings(OtlpOptions? a, OtlpOptions? b)
    {
        if (a is null || b is null) return a is null && b is null;
        var emptyHeaders = new Dictionary<string, string>();
        return a with { Headers = emptyHeaders } == b with { Headers = emptyHeaders }
            && a.Headers.Count == b.Headers.Count
            && a.Headers.All(h => b.Headers.TryGetValue(h.Key, out var v) && v == h.Value);
    }

    private static void Configure(OtlpExporterOptions o, OtlpOptions options, OtlpExportProtocol protocol, string signalPath)
    {
        o.Protocol = protocol;
        // An Endpoint set in code is used as given; OTEL_EXPORTER_OTLP_ENDPOINT's rule (a base URL, the signal's path
        // appended for http/protobuf) is what operators know from every other OpenTelemetry SDK, so it is applied here.
        var endpoint = options.Endpoint.TrimEnd('/');
        o.Endpoint = new Uri(protocol == OtlpExportProtocol.HttpProtobuf ? $"{endpoint}/{signalPath}" : endpoint);
        // The SDK's header list is OTEL_EXPORTER_OTLP_HEADERS' format: comma-separated name=value, values percent-encoded.
        o.Headers = string.Join(',', options.Headers.Select(h => $"{h.Key}={Uri.EscapeDataString(h.Value)}"));
        o.TimeoutMilliseconds = (int)options.Timeout.TotalMilliseconds;
    }
}
