using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Formats one request's access-log line straight into its thread's UTF-8 scratch buffer (no strings, no buffer rented
/// or allocated per request): values are read from the request, response and <see cref="UpstreamTiming"/> and escaped
/// as nginx does (<c>"</c>, <c>\</c>, control characters and bytes outside printable ASCII become <c>\xHH</c>; in the
/// json format, JSON escapes). The returned bytes are valid until the thread formats its next line: the caller copies
/// them out at once (<see cref="AccessLogWriter"/> into its <see cref="AccessLogBuffer"/>).
/// </summary>
internal static class AccessLogLine
{
    private const int InitialSize = 1024;

    /// <summary>This thread's line buffer: grown when a line needs more, then kept (one per event-loop or pool thread).</summary>
    [ThreadStatic] private static byte[]? t_scratch;

    public static ReadOnlySpan<byte> Format(AccessLogFormat format, HttpContext context, TimeSpan elapsed)
    {
        var line = new Utf8Line(t_scratch ??= new byte[InitialSize], format.IsJson);
        var time = LogClock.Now();
        foreach (var segment in format.Segments)
        {
            if (segment.Literal is { } literal) { line.Append(literal); continue; }
            if (segment.Quoted)
            {
                int mark = line.Length;
                line.Append((byte)'"');
                if (WriteVariable(ref line, segment, context, elapsed, time)) line.Append((byte)'"');
                else { line.Length = mark; line.Append("null"u8); }
            }
            else if (!WriteVariable(ref line, segment, context, elapsed, time))
                line.Append(format.IsJson ? "null"u8 : "-"u8);
        }
        line.Append((byte)'\n');
        t_scratch = line.Buffer; // kept, grown or not
        return line.Buffer.AsSpan(0, line.Length);
    }

    /// <summary>Writes the variable's value; false when it has none (nginx writes "-").</summary>
    private static bool WriteVariable(ref Utf8Line line, AccessLogFormat.Segment segment, HttpContext context, TimeSpan elapsed, LogClock.Stamp time)
    {
        var request = context.Request;
        switch (segment.Variable)
        {
            case LogVariable.RemoteAddr:
                if (context.Connection.RemoteIpAddress is not { } ip) return false;
                Span<char> address = stackalloc char[64];
                if (!ip.TryFormat(address, out int written)) return false;
                line.AppendEscaped(address[..written]);
                return true;
            case LogVariable.RemotePort: line.AppendNumber(context.Connection.RemotePort); return true;
            case LogVariable.ServerPort: line.AppendNumber(context.Connection.LocalPort); return true;
            case LogVariable.RemoteUser: return false;
            case LogVariable.TimeLocal: line.Append(time.Local); return true;
            case LogVariable.TimeIso8601: line.Append(time.Iso8601); return true;
            case LogVariable.Msec: line.AppendMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()); return true;
            case LogVariable.Request:
                line.AppendEscaped(request.Method);
                line.Append((byte)' ');
                line.AppendEscaped(RawTarget(context));
                line.Append((byte)' ');
                line.AppendEscaped(request.Protocol);
                return true;
            case LogVariable.RequestMethod: line.AppendEscaped(request.Method); return true;
            case LogVariable.RequestUri: line.AppendEscaped(RawTarget(context)); return true;
            case LogVariable.Uri: line.AppendEscaped(request.Path.Value ?? "/"); return true;
            case LogVariable.Args:
                var query = request.QueryString.Value;
                if (string.IsNullOrEmpty(query) || query.Length < 2) return false;
                line.AppendEscaped(query.AsSpan(1));
                return true;
            case LogVariable.ServerProtocol: line.AppendEscaped(request.Protocol); return true;
            case LogVariable.Scheme: line.AppendEscaped(request.Scheme); return true;
            case LogVariable.Host: return AppendHeader(ref line, request.Headers.Host);
            case LogVariable.RequestId: line.AppendEscaped(context.TraceIdentifier); return true;
            case LogVariable.Status: line.AppendNumber(context.Response.StatusCode); return true;
            case LogVariable.BodyBytesSent:
                // The body length declared to the client (nginx counts bytes sent): 0 when the client left before it started.
                // An upgraded connection's bytes are those its tunnel sent to the client (nginx's $body_bytes_sent does the same).
                if (context.Features.Get<UpgradedConnection>() is { } upgraded) { line.AppendNumber(upgraded.ResponseBytes); return true; }
                if (context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted) { line.AppendNumber(0); return true; }
                if (context.Response.ContentLength is not { } length) return false;
                line.AppendNumber(length);
                return true;
            case LogVariable.RequestTime: line.AppendSeconds(elapsed.TotalSeconds); return true;
            case LogVariable.RequestLength:
                line.AppendNumber(RequestHeadLength(context) + (context.Features.Get<RequestBodyCount>()?.Received ?? 0));
                return true;
            case LogVariable.UpstreamAddr:
                if (context.Features.Get<UpstreamTiming>()?.Address is not { } upstream) return false;
                line.AppendEscaped(upstream);
                return true;
            case LogVariable.UpstreamConnectTime: return AppendSeconds(ref line, context.Features.Get<UpstreamTiming>()?.ConnectSeconds);
            case LogVariable.UpstreamHeaderTime: return AppendSeconds(ref line, context.Features.Get<UpstreamTiming>()?.HeaderSeconds);
            case LogVariable.UpstreamResponseTime: return AppendSeconds(ref line, context.Features.Get<UpstreamTiming>()?.ResponseSeconds);
            case LogVariable.UpstreamCacheStatus:
                if (CacheStatusFeature.Of(context) is not { } cacheStatus) return false;
                line.AppendEscaped(cacheStatus);
                return true;
            case LogVariable.HttpReferer: return AppendHeader(ref line, request.Headers.Referer);
            case LogVariable.HttpUserAgent: return AppendHeader(ref line, request.Headers.UserAgent);
            case LogVariable.RequestHeader: return AppendHeader(ref line, request.Headers[segment.Header!]);
            case LogVariable.ResponseHeader: return AppendHeader(ref line, context.Response.Headers[segment.Header!]);
            case LogVariable.Route:
                if (context.Features.Get<IReverseProxyFeature>()?.Route.Config.RouteId is not { } route) return false;
                line.AppendEscaped(route);
                return true;
            case LogVariable.Cluster:
                if (context.Features.Get<IReverseProxyFeature>()?.Cluster?.Config.ClusterId is not { } cluster) return false;
                line.AppendEscaped(cluster);
                return true;
            case LogVariable.TraceId:
                return AppendTraceId(ref line, context);
            default:
                return false;
        }
    }

    /// <summary>
    /// The request head's length as HTTP/1.1 text: request line, one "Name: value" line per field value, the empty line
    /// (Kestrel keeps no raw head; exact for heads written that way, which is how clients write them).
    /// </summary>
    private static long RequestHeadLength(HttpContext context)
    {
        var request = context.Request;
        long length = request.Method.Length + 1 + RawTarget(context).Length + 1 + request.Protocol.Length + 2 + 2;
        foreach (var (name, values) in request.Headers)
            foreach (var value in values) length += name.Length + 2 + (value?.Length ?? 0) + 2;
        return length;
    }

    /// <summary>The request target as the client sent it (nginx's $request_uri), not the decoded path.</summary>
    private static string RawTarget(HttpContext context)
        => context.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } raw ? raw : context.Request.Path.Value + context.Request.QueryString.Value;

    private static readonly SearchValues<char> LowerHex = SearchValues.Create("0123456789abcdef");

    /// <summary>
    /// The request span's trace id; with no span (no tracing listener), the one of the client's W3C <c>traceparent</c>
    /// (<c>00-TRACEID-SPANID-FLAGS</c>), which the upstream then receives unchanged: the same id in every log either way.
    /// </summary>
    private static bool AppendTraceId(ref Utf8Line line, HttpContext context)
    {
        Span<char> id = stackalloc char[32];
        if (Activity.Current is { IdFormat: ActivityIdFormat.W3C } activity)
        {
            Span<byte> raw = stackalloc byte[16];
            activity.TraceId.CopyTo(raw);
            Convert.TryToHexStringLower(raw, id, out _);
            line.AppendEscaped(id);
            return true;
        }
        var header = context.Request.Headers["traceparent"];
        if (header.Count != 1 || header[0] is not { Length: 55 } value || value[2] != '-' || value[35] != '-') return false;
        var traceId = value.AsSpan(3, 32);
        if (traceId.ContainsAnyExcept(LowerHex) || !traceId.ContainsAnyExcept('0')) return false;
        line.AppendEscaped(traceId);
        return true;
    }

    private static bool AppendHeader(ref Utf8Line line, StringValues values)
    {
        if (values.Count == 0) return false;
        if (values.Count == 1) { if (values[0] is not { Length: > 0 } one) return false; line.AppendEscaped(one); }
        else line.AppendEscaped(values.ToString());
        return true;
    }

    private static bool AppendSeconds(ref Utf8Line line, double? seconds)
    {
        if (seconds is not { } s) return false;
        line.AppendSeconds(s);
        return true;
    }

    /// <summary>A growable UTF-8 line in the thread's scratch array.</summary>
    private struct Utf8Line(byte[] buffer, bool json)
    {
        public byte[] Buffer = buffer;
        public int Length;

        public void Append(byte b)
        {
            Ensure(1);
            Buffer[Length++] = b;
        }

        public void Append(ReadOnlySpan<byte> bytes)
        {
            Ensure(bytes.Length);
            bytes.CopyTo(Buffer.AsSpan(Length));
            Length += bytes.Length;
        }

        public void AppendNumber(long n)
        {
            Ensure(20);
            Utf8Formatter.TryFormat(n, Buffer.AsSpan(Length), out int written);
            Length += written;
        }

        /// <summary>Seconds with millisecond resolution, as nginx: 0.002.</summary>
        public void AppendSeconds(double seconds)
            => AppendMilliseconds(double.IsFinite(seconds) && seconds > 0 ? (long)Math.Round(Math.Min(seconds, 1e12) * 1000) : 0);

        /// <summary>Milliseconds as seconds with three decimals (integers only: no decimal or floating-point formatting per line).</summary>
        public void AppendMilliseconds(long milliseconds)
        {
            Ensure(24);
            Utf8Formatter.TryFormat(milliseconds / 1000, Buffer.AsSpan(Length), out int written);
            Length += written;
            int fraction = (int)(milliseconds % 1000);
            Buffer[Length++] = (byte)'.';
            Buffer[Length++] = (byte)('0' + fraction / 100);
            Buffer[Length++] = (byte)('0' + fraction / 10 % 10);
            Buffer[Length++] = (byte)('0' + fraction % 10);
        }

        /// <summary>Request text is attacker-controlled: no quote, backslash, control character or newline may pass unescaped.</summary>
        public void AppendEscaped(ReadOnlySpan<char> text)
        {
            Ensure(text.Length);
            Span<byte> utf8 = stackalloc byte[4];
            foreach (char ch in text)
            {
                if (ch is >= ' ' and < (char)0x7F and not '"' and not '\\')
                {
                    Ensure(1);
                    Buffer[Length++] = (byte)ch;
                }
                else if (ch <= 0xFF) Escape(ch); // header values hold one char per byte (HeaderEncoding)
                else
                {
                    int n = Encoding.UTF8.GetBytes([ch], utf8);
                    foreach (var b in utf8[..n]) Escape((char)b);
                }
            }
        }

        private void Escape(char ch)
        {
            Ensure(6);
            if (json)
            {
                if (ch is '"' or '\\') { Buffer[Length++] = (byte)'\\'; Buffer[Length++] = (byte)ch; return; }
                "\\u00"u8.CopyTo(Buffer.AsSpan(Length));
                Length += 4;
            }
            else
            {
                Buffer[Length++] = (byte)'\\';
                Buffer[Length++] = (byte)'x';
            }
            Buffer[Length++] = (byte)"0123456789ABCDEF"[ch >> 4];
            Buffer[Length++] = (byte)"0123456789ABCDEF"[ch & 0xF];
        }

        private void Ensure(int more)
        {
            if (Length + more <= Buffer.Length) return;
            var bigger = new byte[Math.Max(Buffer.Length * 2, Length + more)];
            Buffer.AsSpan(0, Length).CopyTo(bigger);
            Buffer = bigger;
        }
    }
}
