using System.IO.Pipelines;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ZcProxy.Core.Transport;

internal static class RequestHeadTapExtensions
{
    /// <summary>Room for a request line on top of Kestrel's header limit (Kestrel's MaxRequestLineSize is 8 KiB by default).</summary>
    private const int RequestLineSlack = 16 * 1024;

    /// <summary>
    /// Puts a <see cref="RequestHeadTap"/> between the connection and Kestrel's HTTP/1.x parser, as a connection
    /// feature. After UseHttps on TLS listeners (it must see plaintext) and after the h2c detection; not on HTTP/2
    /// connections (ALPN h2 or cleartext prior knowledge), which have no Connection field.
    /// </summary>
    public static ListenOptions UseRequestHeadTap(this ListenOptions listenOptions)
    {
        var limits = listenOptions.KestrelServerOptions.Limits;
        int limit = (int)Math.Min(int.MaxValue - RequestLineSlack, (long)limits.MaxRequestLineSize + limits.MaxRequestHeadersTotalSize) + RequestLineSlack;
        listenOptions.Use(next => context =>
        {
            if (context.Features.Get<ITlsApplicationProtocolFeature>()?.ApplicationProtocol.Span.SequenceEqual("h2"u8) == true
                || CleartextHttp2.IsHttp2(context))
                return next(context);
            var tap = new RequestHeadTap(context.Transport.Input, limit);
            context.Transport = new Duplex(tap, context.Transport.Output);
            context.Features.Set(tap);
            return next(context);
        });
        return listenOptions;
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}
