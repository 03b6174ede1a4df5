using System.Buffers;
using System.IO.Pipelines;
using System.Reflection;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Cleartext HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) beside HTTP/1.x on one plaintext listener, as nginx's
/// <c>listen 80 http2</c> serves both. Kestrel 10 picks HTTP/1.1 for every cleartext connection of an Http1AndHttp2
/// endpoint (it has no ALPN to go by), so an h2c client's preface met an HTTP/1.1 parser and the connection was closed.
/// This connection middleware reads the first bytes without consuming them: the 24-byte HTTP/2 preface selects HTTP/2
/// for this connection, anything else HTTP/1.x. The choice is handed to Kestrel through its per-connection protocol
/// feature (internal in Kestrel 10; the same one its TLS middleware sets from ALPN, and which Kestrel's own preface
/// detection of later versions uses). If a Kestrel without it ever runs this, <see cref="IsSupported"/> is false and
/// the start refuses such listeners with a clear message; <c>CleartextHttp2Tests</c> fails first.
/// </summary>
internal static class CleartextHttp2
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();
    private static readonly Type? ProtocolsFeature = typeof(KestrelServerOptions).Assembly
        .GetType("Microsoft.AspNetCore.Server.Kestrel.Core.Internal.HttpProtocolsFeature");
    private static readonly object? Http1 = Create(HttpProtocols.Http1);
    private static readonly object? Http2 = Create(HttpProtocols.Http2);

    public static bool IsSupported => Http1 is not null && Http2 is not null;

    /// <summary>Adds the detection to a plaintext listener whose Protocols are Http1AndHttp2 (before the request-head tap).</summary>
    public static ListenOptions UsePriorKnowledgeDetection(this ListenOptions listenOptions)
    {
        if (!IsSupported) throw new NotSupportedException("this Kestrel has no per-connection protocol choice: cleartext HTTP/2 needs \"Protocols\": \"Http2\" on its own listener");
        // Kestrel's own timeouts start with the protocol: until then, an idle connection is bounded by the keep-alive timeout.
        var timeout = listenOptions.KestrelServerOptions.Limits.KeepAliveTimeout;
        listenOptions.Use(next => async connection =>
        {
            bool? http2;
            using (var idle = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed))
            {
                idle.CancelAfter(timeout);
                http2 = await StartsWithPrefaceAsync(connection.Transport.Input, idle.Token);
            }
            if (http2 is null)
            {
                connection.Abort(new ConnectionAbortedException("no request within the keep-alive timeout"));
                return;
            }
            connection.Features[ProtocolsFeature!] = http2.Value ? Http2 : Http1;
            if (http2.Value) connection.Features.Set(PriorKnowledgeHttp2.Instance);
            await next(connection);
        });
        return listenOptions;
    }

    /// <summary>True when the connection is an h2c one (set by the detection), so HTTP/1.x-only readers stay out of its way.</summary>
    public static bool IsHttp2(ConnectionContext connection) => connection.Features.Get<PriorKnowledgeHttp2>() is not null;

    /// <summary>Reads until the bytes either are the preface or cannot be; consumes nothing. Null: nothing came in time.</summary>
    private static async Task<bool?> StartsWithPrefaceAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult result;
            try { result = await input.ReadAsync(cancellationToken); }
            catch (OperationCanceledException) { return null; }
            var buffer = result.Buffer;
            int compared = (int)Math.Min(buffer.Length, Preface.Length);
            bool matches = Matches(buffer.Slice(0, compared));
            if (!matches || compared == Preface.Length || result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(buffer.Start);
                return matches && compared == Preface.Length;
            }
            input.AdvanceTo(buffer.Start, buffer.End); // a prefix of the preface so far: wait for more bytes
        }
    }

    private static bool Matches(ReadOnlySequence<byte> head)
    {
        Span<byte> copy = stackalloc byte[Preface.Length];
        head.CopyTo(copy);
        return copy[..(int)head.Length].SequenceEqual(Preface.AsSpan(0, (int)head.Length));
    }

    private static object? Create(HttpProtocols protocols)
    {
        try
        {
            return ProtocolsFeature?.GetConstructor(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance, [typeof(HttpProtocols)])
                ?.Invoke([protocols]);
        }
        catch (TargetInvocationException)
        {
            return null;
        }
    }

    /// <summary>Marks an h2c connection.</summary>
    private sealed class PriorKnowledgeHttp2
    {
        public static readonly PriorKnowledgeHttp2 Instance = new();
    }
}
