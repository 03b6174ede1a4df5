using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// The head fast paths of routes with the default transforms must send exactly what the transform path sends (the
/// route's real transformer over HttpRequestMessage/HttpResponseMessage, as YARP's forwarder and routes with
/// transforms of their own use): the same request head bytes, the same response fields under the same names in the
/// same order.
/// </summary>
public class DefaultHeadTests
{
    private static readonly HttpTransformer Transformer = BuildTransformer(out _);

    private static HttpTransformer BuildTransformer(out DefaultTransforms defaults, ITransformProvider? extra = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddReverseProxy();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ITransformProvider, UpstreamTimingTransform>());
        services.AddForwardingTransforms();
        if (extra is not null) services.AddSingleton(extra);
        services.AddSingleton<DefaultTransforms>();
        using var provider = services.BuildServiceProvider();
        defaults = provider.GetRequiredService<DefaultTransforms>();
        return provider.GetRequiredService<ITransformBuilder>().Build(new RouteConfig { RouteId = "r", ClusterId = "c" }, null);
    }

    public static TheoryData<string, string, string, string> Requests() => new()
    {
        // method, target, "Name: value" lines (| separated), destination address
        { "GET", "/index.html", "Host: example.com|User-Agent: wrk|Accept: */*|Accept-Encoding: gzip|Connection: keep-alive", "http://127.0.0.1:8081/" },
        { "GET", "/a%2Fb/%41?x=%2F&y", "Host: example.com:8080|X-Forwarded-For: 6.6.6.6|X-Forwarded-Host: evil|Forwarded: for=1.2.3.4|X-Custom: v", "http://127.0.0.1:8081/base/" },
        { "GET", "/xff", "Host: h|X-Forwarded-For: 6.6.6.6|X-Forwarded-For: 7.7.7.7, 8.8.8.8|Forwarded: for=1.2.3.4", "http://127.0.0.1:8081/" },
        { "GET", "/x/./y/../a%2Fb/%2e%2e/c", "Host: h|Cookie: a=1|Cookie: b=2|X-Multi: 1|X-Multi: 2", "http://upstream.test" },
        { "GET", "/p?", "Host: h|Content-Type: text/plain|Server: client-says|ETag: \"e\"|Keep-Alive: 5|TE: trailers|Proxy-Authorization: x", "http://127.0.0.1:81/" },
        { "GET", "/hop", "Host: h|Connection: keep-alive, X-Hop, Cookie|X-Hop: 1|Cookie: c=1|X-Stays: 2", "http://127.0.0.1:81/" },
        { "GET", "/case", "Host: h|content-type: x|x-frame-options: DENY|accept: a|x-lower: b", "http://127.0.0.1:81/" },
        { "GET", "/bytes", "Host: h|X-Utf8: caf\u00C3\u00A9|X-Latin1: caf\u00E9|X-Empty: ", "http://127.0.0.1:81/" },
        { "POST", "/upload;v=1", "Host: h|Content-Length: 5|Content-Type: application/json|Expect: 100-continue", "http://127.0.0.1:81/" },
        { "POST", "/chunked", "Host: h|Transfer-Encoding: chunked|Content-Type: text/plain|Content-Language: en", "http://127.0.0.1:81/" },
        { "POST", "/empty", "Host: h", "http://127.0.0.1:81/" },
        { "PATCH", "/empty", "Host: h|Content-Length: 0", "http://127.0.0.1:81/" },
        { "DELETE", "/d", "Host: h|traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01|tracestate: k=v", "http://[::1]:8081/" },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task RequestHead_IsByteForByteTheTransformPaths(string method, string target, string fields, string address)
    {
        foreach (var remote in new[] { IPAddress.Parse("192.0.2.7"), IPAddress.Parse("2001:db8::1"), IPAddress.Parse("::ffff:192.0.2.8") })
        {
            foreach (var withActivity in new[] { false, true })
            {
                foreach (var configHost in new string?[] { null, "origin.internal" })
                {
                    using var activity = withActivity ? new Activity("test").Start() : null;
                    var (fast, slow) = await BothRequestHeadsAsync(method, target, fields, address, remote, configHost);
                    Assert.Equal(slow, fast);
                }
            }
        }
    }

    [Fact]
    public async Task RequestHead_ALengthlessBodyIsChunkedOnBothPaths()
    {
        // Kestrel says the request has a body but no Content-Length reached the transforms: both switch to chunked.
        var (fast, slow) = await BothRequestHeadsAsync("PUT", "/t", "Host: h|Transfer-Encoding: chunked", "http://127.0.0.1:81/", IPAddress.Loopback, null,
            RequestBodyFraming.ContentLength);
        Assert.Equal(slow, fast);
        Assert.Contains("Transfer-Encoding: chunked\r\n", fast, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/pathbase", "", "/x")]                  // a path base: YARP adds X-Forwarded-Prefix and builds the target itself
    [InlineData("", "http://h/abs", "/abs")]             // absolute-form target
    [InlineData("", "/q\"uote", "/q\"uote")]              // characters System.Uri would escape
    [InlineData("", "/bad%zz", "/bad%zz")]                // a malformed escape
    public void RequestHead_StepsAsideWhereTheTransformPathDecides(string pathBase, string rawTarget, string path)
    {
        var context = Context("GET", rawTarget.Length > 0 ? rawTarget : path, "Host: h", IPAddress.Loopback);
        context.Request.PathBase = pathBase;
        context.Request.Path = path;
        var framing = RequestBodyFraming.None;
        var head = new HeadBuffer();
        Assert.False(DefaultRequestHead.TryWrite(context, Target("http://127.0.0.1:81/", null), ref framing, head));
        head.Release();
    }

    [Fact]
    public void DefaultTransforms_OnlyForRoutesWithoutTransforms_AndKnownProviders()
    {
        BuildTransformer(out var defaults);
        var plain = new Yarp.ReverseProxy.Model.RouteModel(new RouteConfig { RouteId = "r" }, null, HttpTransformer.Default);
        var withTransforms = new Yarp.ReverseProxy.Model.RouteModel(new RouteConfig
        {
            RouteId = "r",
            Transforms = [new Dictionary<string, string> { ["RequestHeader"] = "X-A", ["Set"] = "1" }],
        }, null, HttpTransformer.Default);
        var cluster = new Yarp.ReverseProxy.Model.ClusterModel(new ClusterConfig { ClusterId = "c" }, new HttpMessageInvoker(new HttpClientHandler()));
        var affinity = new Yarp.ReverseProxy.Model.ClusterModel(new ClusterConfig { ClusterId = "c", SessionAffinity = new SessionAffinityConfig { Enabled = true } },
            new HttpMessageInvoker(new HttpClientHandler()));
        Assert.True(defaults.AreDefault(plain, cluster));
        Assert.False(defaults.AreDefault(withTransforms, cluster));
        Assert.False(defaults.AreDefault(plain, affinity)); // YARP's affinity provider adds a response transform

        BuildTransformer(out var withUnknownProvider, new UnknownProvider());
        Assert.False(withUnknownProvider.AreDefault(plain, cluster));
    }

    public static TheoryData<int, string> Responses() => new()
    {
        { 200, "Server: nginx|Date: Tue, 01 Dec 2026 10:00:00 GMT|Content-Type: text/html|Content-Length: 1024|Last-Modified: x|Connection: keep-alive|ETag: \"a\"|Accept-Ranges: bytes" },
        { 200, "Content-Disposition: attachment|Set-Cookie: a=1|Set-Cookie: b=2|X-Hop: 1|Connection: X-Hop, close|Keep-Alive: timeout=5|Transfer-Encoding: chunked" },
        { 200, "Host: upstream|Accept: x|x-frame-options: DENY|content-type: a/b|X-Lower: y|Alt-Svc: h2=\":443\"|Strict-Transport-Security: max-age=1" },
        { 204, "Content-Length: 0|Server: s" },
        { 205, "Content-Length: 0|Content-Length: 0" },
        { 304, "Content-Length: 10|ETag: \"b\"" },
        { 200, "X-Utf8: caf\u00C3\u00A9|X-Empty: |Vary: Accept|Vary: Cookie" },
    };

    [Theory]
    [MemberData(nameof(Responses))]
    public async Task ResponseFields_AreTheTransformPaths(int status, string fields)
    {
        // One head for every copy: what the fast path works out the first time is reused (a keep-alive connection's heads repeat).
        var head = new ResponseHead
        {
            StatusCode = status, ReasonPhrase = "Whatever", MinorVersion = 1, Framing = BodyFraming.None, ContentLength = -1, KeepAlive = true, HeadLength = 0,
            Headers = [.. Fields(fields).Select(f => new KeyValuePair<string, string>(f.Name, f.Value))],
        };
        foreach (var proxySetSts in new[] { false, true, false })
        {
            var fast = new DefaultHttpContext();
            var slow = new DefaultHttpContext();
            if (proxySetSts)
            {
                fast.Response.Headers.StrictTransportSecurity = "max-age=99";
                slow.Response.Headers.StrictTransportSecurity = "max-age=99";
            }
            Assert.True(await ZeroCopyForwarder.CopyStatusAndHeadersAsync(fast, head, null));
            Assert.True(await ZeroCopyForwarder.CopyStatusAndHeadersAsync(slow, head, Transformer));
            Assert.Equal(Describe(slow.Response.Headers), Describe(fast.Response.Headers));
            Assert.Equal(slow.Response.StatusCode, fast.Response.StatusCode);
        }
    }

    /// <summary>
    /// YARP's hop-by-hop list, written out here rather than taken from <see cref="HopByHopFields"/>: a name that goes
    /// missing there (or from either head's use of it) fails one of the two tests below.
    /// </summary>
    public static TheoryData<string> HopByHopNames() => new()
    {
        "Connection", "Transfer-Encoding", "Keep-Alive", "Upgrade", "Proxy-Connection", "Proxy-Authenticate",
        "Proxy-Authentication-Info", "Proxy-Authorization", "Proxy-Features", "Proxy-Instruction", "Security-Scheme",
        "ALPN", "Close", "HTTP2-Settings", "Upgrade-Insecure-Requests", "TE", "Alt-Svc",
    };

    [Theory]
    [MemberData(nameof(HopByHopNames))]
    public void RequestHead_DropsTheHopByHopField(string name)
    {
        foreach (var spelling in new[] { name, name.ToLowerInvariant() })
        {
            var context = Context("GET", "/hop", $"Host: h|{spelling}: hop-value|X-Kept: 1", IPAddress.Loopback);
            var framing = Framing(context);
            var head = new HeadBuffer();
            Assert.True(DefaultRequestHead.TryWrite(context, Target("http://127.0.0.1:81/", null), ref framing, head));
            var sent = Encoding.Latin1.GetString(head.Written.Span);
            head.Release();
            Assert.Contains("\r\nX-Kept: 1\r\n", sent, StringComparison.Ordinal);
            Assert.DoesNotContain("hop-value", sent, StringComparison.Ordinal);
        }
    }

    [Theory]
    [MemberData(nameof(HopByHopNames))]
    public async Task ResponseFields_DropTheHopByHopField(string name)
    {
        foreach (var spelling in new[] { name, name.ToLowerInvariant() })
        {
            var head = new ResponseHead
            {
                StatusCode = 200, ReasonPhrase = "OK", MinorVersion = 1, Framing = BodyFraming.None, ContentLength = -1, KeepAlive = true, HeadLength = 0,
                Headers = [new(spelling, "hop-value"), new("X-Kept", "1")],
            };
            var context = new DefaultHttpContext();
            Assert.True(await ZeroCopyForwarder.CopyStatusAndHeadersAsync(context, head, null));
            var copied = Describe(context.Response.Headers);
            Assert.Contains("X-Kept: 1", copied, StringComparison.Ordinal);
            Assert.DoesNotContain("hop-value", copied, StringComparison.Ordinal);
        }
    }

    private static string Describe(IHeaderDictionary headers) => string.Join("\n", headers.Select(h => $"{h.Key}: {string.Join(" | ", h.Value.ToArray())}"));

    private static async Task<(string Fast, string Slow)> BothRequestHeadsAsync(string method, string target, string fields, string address,
        IPAddress remote, string? configHost, RequestBodyFraming? framingOverride = null)
    {
        var context = Context(method, target, fields, remote);
        var framing = framingOverride ?? Framing(context);
        var head = new HeadBuffer();
        var fastFraming = framing;
        Assert.True(DefaultRequestHead.TryWrite(context, Target(address, configHost), ref fastFraming, head));
        var fast = Encoding.Latin1.GetString(head.Written.Span);
        head.Release();

        var slowContext = Context(method, target, fields, remote);
        var proxied = new ProxyFeature(address, configHost);
        slowContext.Features.Set<Yarp.ReverseProxy.Model.IReverseProxyFeature>(proxied);
        var (slowHead, slowFraming) = await ZeroCopyForwarder.TransformRequestHeadAsync(slowContext, Transformer, address, framing);
        Assert.Equal(slowFraming, fastFraming);
        return (fast, Encoding.Latin1.GetString(slowHead!));
    }

    private static RequestBodyFraming Framing(HttpContext context)
    {
        var headers = context.Request.Headers;
        if (headers.ContainsKey("Transfer-Encoding")) return RequestBodyFraming.Chunked;
        return context.Request.ContentLength > 0 ? RequestBodyFraming.ContentLength : RequestBodyFraming.None;
    }

    private static DestinationTarget Target(string address, string? host)
        => DestinationTarget.For(new DestinationConfig { Address = address, Host = host })!;

    private static DefaultHttpContext Context(string method, string target, string fields, IPAddress remote)
    {
        var context = new DefaultHttpContext();
        var request = context.Request;
        request.Method = method;
        request.Scheme = "http";
        request.Protocol = "HTTP/1.1";
        int question = target.IndexOf('?', StringComparison.Ordinal);
        var rawPath = question < 0 ? target : target[..question];
        // Kestrel's routed path: decoded except %2F, dot segments removed (RawPathTransforms has the same rules).
        if (rawPath.StartsWith('/')) request.Path = Uri.UnescapeDataString(RawPathTransforms.RemoveDotSegments(rawPath).Replace("%2F", "%252F", StringComparison.OrdinalIgnoreCase));
        if (question >= 0) request.QueryString = new QueryString(target[question..]);
        context.Features.Get<IHttpRequestFeature>()!.RawTarget = target;
        context.Connection.RemoteIpAddress = remote;
        foreach (var (name, value) in Fields(fields))
        {
            request.Headers[name] = StringValues.Concat(request.Headers[name], value);
            if (name.Equals("Host", StringComparison.OrdinalIgnoreCase)) request.Host = new HostString(value);
        }
        return context;
    }

    private static IEnumerable<(string Name, string Value)> Fields(string fields)
    {
        foreach (var line in fields.Split('|', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            yield return (line[..colon], line[(colon + 1)..].Trim());
        }
    }

    /// <summary>What YARP's original-host transform reads: the destination's configured Host.</summary>
    private sealed class ProxyFeature(string address, string? host) : Yarp.ReverseProxy.Model.IReverseProxyFeature
    {
        public Yarp.ReverseProxy.Model.RouteModel Route => throw new NotSupportedException();
        public Yarp.ReverseProxy.Model.ClusterModel Cluster => throw new NotSupportedException();
        public IReadOnlyList<Yarp.ReverseProxy.Model.DestinationState> AllDestinations => [];
        public IReadOnlyList<Yarp.ReverseProxy.Model.DestinationState> AvailableDestinations { get; set; } = [];
        public Yarp.ReverseProxy.Model.DestinationState? ProxiedDestination { get; set; } = new("d", new Yarp.ReverseProxy.Model.DestinationModel(new DestinationConfig { Address = address, Host = host }));
    }

    private sealed class UnknownProvider : ITransformProvider
    {
        public void Apply(TransformBuilderContext context) => context.AddRequestHeader("X-Added", "1");
        public void ValidateCluster(TransformClusterValidationContext context) { }
        public void ValidateRoute(TransformRouteValidationContext context) { }
    }
}
