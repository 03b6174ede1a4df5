using System.Collections;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Hosting.Server.Abstractions;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>
/// One request of ZcProxy's HTTP/1.1 layer: the feature collection the host's application runs on, with a plain field
/// per feature the proxied path reads (Kestrel's fast features, and ZcProxy's own zero-copy features that Kestrel's
/// collection could only find in its dictionary) and a short list for the rest. Pooled per loop thread and reset
/// between requests, so an idle keep-alive connection holds none, nor any header collection or buffer.
/// </summary>
internal abstract partial class Http1Exchange : IFeatureCollection, IEndpointFeature, IRouteValuesFeature, IHttpUpgradeFeature
{
    private int _revision;
    private List<KeyValuePair<Type, object>>? _others;

    private bool _ownReplaced; // an own feature type was set: Own() looks for the replacement in _others

    // ZcProxy's own per-request features, set by the request middleware, and YARP's route/cluster feature (~13
    // lookups per proxied request): plain fields, no list to scan.
    private ZeroCopyResponse? _zeroCopyResponse;
    private IReverseProxyFeature? _reverseProxy;
    // Request-level features the proxied path sets or asks for (several asks each per request, most of them when none
    // is set): fields too, so that an ask is neither a list scan nor, when absent, the connection's dictionary.
    private BalancingRequestFeature? _pool;
    private UpstreamTiming? _upstreamTiming;
    private IForwarderErrorFeature? _forwarderError;
    private ReceivedConnectionField? _receivedConnection;
    // Routing's: this object is both features (as Kestrel's is), so routing allocates no feature object per request.
    private Microsoft.AspNetCore.Http.Endpoint? _endpointValue;
    private Microsoft.AspNetCore.Routing.RouteValueDictionary? _routeValuesValue;

    /// <summary>The connection this request arrived on, and its driver.</summary>
    internal Http1Connection Owner { get; private set; } = null!;
    internal ZeroCopyConnection Connection => Owner.Connection;

    bool IFeatureCollection.IsReadOnly => false;
    int IFeatureCollection.Revision => _revision;

    /// <summary>Starts the request whose head was parsed; <see cref="Reset"/> ends it.</summary>
    internal void Begin(Http1Connection owner, in Http1RequestHead head)
    {
        Owner = owner;
        _revision++;
        BeginRequest(head);
        BeginResponse();
    }

    /// <summary>Forgets the request (the object goes back to the pool): headers cleared, references dropped.</summary>
    internal void Reset()
    {
        _revision++;
        _others?.Clear();
        _ownReplaced = false;
        _reverseProxy = null;
        _pool = null;
        _upstreamTiming = null;
        _forwarderError = null;
        _receivedConnection = null;
        _zeroCopyResponse?.End(); // the connection's: it must not keep this pooled object alive
        _zeroCopyResponse = null;
        _endpointValue = null;
        _routeValuesValue = null;
        ResetRequest();
        ResetResponse();
        Owner = null!;
    }

    public object? this[Type key]
    {
        get => ByType(key);
        set => Set(key, value);
    }

    private object? ByType(Type key)
    {
        if (key == typeof(IReverseProxyFeature)) return _reverseProxy;
        if (key == typeof(IHttpRequestFeature) || key == typeof(IHttpResponseFeature) || key == typeof(IHttpResponseBodyFeature)
            || key == typeof(IRequestBodyPipeFeature) || key == typeof(IHttpRequestBodyDetectionFeature) || key == typeof(IHttpConnectionFeature)
            || key == typeof(IHttpRequestLifetimeFeature) || key == typeof(IHttpRequestIdentifierFeature) || key == typeof(IHttpMaxRequestBodySizeFeature)
            || key == typeof(IHttpUpgradeFeature)
            || key == typeof(IEndpointFeature) || key == typeof(IRouteValuesFeature))
            return Own(key);
        if (key == typeof(ZeroCopyResponse)) return _zeroCopyResponse;
        if (key == typeof(ZeroCopyConnection)) return Connection;
        if (key == typeof(BalancingRequestFeature)) return _pool;
        if (key == typeof(UpstreamTiming)) return _upstreamTiming;
        if (key == typeof(IForwarderErrorFeature)) return _forwarderError;
        if (key == typeof(ReceivedConnectionField)) return _receivedConnection;
        if (_others is { } others)
            foreach (var pair in others)
                if (pair.Key == key) return pair.Value;
        // Connection-level features (the tap, the lifetime notification, the connection's items) as Kestrel's collection
        // does; the absent ones it was asked for remembered by the connection.
        return Owner.ConnectionFeature(key);
    }

    /// <summary>This object as the feature asked for, unless the app replaced it (then the replacement, from the list).</summary>
    private object? Own(Type key)
    {
        if (_ownReplaced && _others is { } others)
            foreach (var pair in others)
                if (pair.Key == key) return pair.Value;
        return this;
    }

    /// <remarks>
    /// Setting one of the features kept in a field leaves <see cref="IFeatureCollection.Revision"/> as it is. The
    /// revision tells feature caches that what they hold may be stale, and ASP.NET's (behind HttpRequest, HttpResponse,
    /// the connection info) hold none of these types: each change made them ask again, through a generic virtual call,
    /// for every feature they had (the pipeline set four of these per request).
    /// </remarks>
    private void Set(Type key, object? value)
    {
        if (key == typeof(ZeroCopyResponse)) { _zeroCopyResponse = (ZeroCopyResponse?)value; return; }
        if (key == typeof(IReverseProxyFeature)) { _reverseProxy = (IReverseProxyFeature?)value; return; }
        if (key == typeof(BalancingRequestFeature)) { _pool = (BalancingRequestFeature?)value; return; }
        if (key == typeof(UpstreamTiming)) { _upstreamTiming = (UpstreamTiming?)value; return; }
        if (key == typeof(IForwarderErrorFeature)) { _forwarderError = (IForwarderErrorFeature?)value; return; }
        if (key == typeof(ReceivedConnectionField)) { _receivedConnection = (ReceivedConnectionField?)value; return; }
        _revision++;
        if (Array.IndexOf(s_ownTypes, key) >= 0) _ownReplaced = true;
        var others = _others ??= new List<KeyValuePair<Type, object>>(8);
        for (int i = 0; i < others.Count; i++)
        {
            if (others[i].Key != key) continue;
            if (value is null) others.RemoveAt(i);
            else others[i] = new(key, value);
            return;
        }
        if (value is not null) others.Add(new(key, value));
    }

    /// <summary>
    /// ASP.NET Core's feature caches and YARP ask here (~20 times per proxied request). In this shared generic code,
    /// comparing typeof(TFeature) with a type is a handle comparison, while handing it on as a Type costs a runtime
    /// type lookup and a checked cast back: the features this object is, and YARP's, are answered here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TFeature? Get<TFeature>()
    {
        if (typeof(TFeature) == typeof(IReverseProxyFeature)) return Unsafe.As<IReverseProxyFeature?, TFeature?>(ref _reverseProxy);
        if (!_ownReplaced && IsOwn<TFeature>())
        {
            object self = this;
            return Unsafe.As<object, TFeature>(ref self);
        }
        return (TFeature?)ByType(typeof(TFeature));
    }

    /// <summary>A feature type this object is (<see cref="s_ownTypes"/>) and answers through the generic asks: IEndpointFeature first, asked most.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsOwn<TFeature>()
        => typeof(TFeature) == typeof(IEndpointFeature) || typeof(TFeature) == typeof(IHttpResponseBodyFeature)
            || typeof(TFeature) == typeof(IHttpRequestFeature) || typeof(TFeature) == typeof(IHttpResponseFeature)
            || typeof(TFeature) == typeof(IHttpRequestBodyDetectionFeature) || typeof(TFeature) == typeof(IRouteValuesFeature)
            || typeof(TFeature) == typeof(IHttpRequestLifetimeFeature) || typeof(TFeature) == typeof(IHttpConnectionFeature)
            || typeof(TFeature) == typeof(IHttpMaxRequestBodySizeFeature) || typeof(TFeature) == typeof(IHttpUpgradeFeature);

    public void Set<TFeature>(TFeature? instance) => Set(typeof(TFeature), instance);

    /// <summary>ZcProxy's own sets (<see cref="FeatureLookup.Put{T}"/>), inlined as <see cref="Find{T}"/>: a field's write.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Put<T>(T? value) where T : class
    {
        if (typeof(T) == typeof(ZeroCopyResponse)) _zeroCopyResponse = Unsafe.As<ZeroCopyResponse?>(value);
        else if (typeof(T) == typeof(BalancingRequestFeature)) _pool = Unsafe.As<BalancingRequestFeature?>(value);
        else if (typeof(T) == typeof(UpstreamTiming)) _upstreamTiming = Unsafe.As<UpstreamTiming?>(value);
        else if (typeof(T) == typeof(IForwarderErrorFeature)) _forwarderError = Unsafe.As<IForwarderErrorFeature?>(value);
        else if (typeof(T) == typeof(ReceivedConnectionField)) _receivedConnection = Unsafe.As<ReceivedConnectionField?>(value);
        else Set<T>(value);
    }

    /// <summary>
    /// ZcProxy's own asks (<see cref="FeatureLookup.Find{T}"/>), inlined where <typeparamref name="T"/> is known: the
    /// type tests fold away and an ask for a feature kept in a field is that field's read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal T? Find<T>() where T : class
    {
        if (typeof(T) == typeof(IReverseProxyFeature)) return Unsafe.As<T>(_reverseProxy);
        if (typeof(T) == typeof(ZeroCopyResponse)) return Unsafe.As<T>(_zeroCopyResponse);
        if (typeof(T) == typeof(ZeroCopyConnection)) return Unsafe.As<T>(Connection);
        if (typeof(T) == typeof(BalancingRequestFeature)) return Unsafe.As<T>(_pool);
        if (typeof(T) == typeof(UpstreamTiming)) return Unsafe.As<T>(_upstreamTiming);
        if (typeof(T) == typeof(IForwarderErrorFeature)) return Unsafe.As<T>(_forwarderError);
        if (typeof(T) == typeof(ReceivedConnectionField)) return Unsafe.As<T>(_receivedConnection);
        if (IsOwn<T>()) return _ownReplaced ? (T?)Own(typeof(T)) : Unsafe.As<T>(this);
        return (T?)ByType(typeof(T));
    }

    public IEnumerator<KeyValuePair<Type, object>> GetEnumerator()
    {
        var own = new List<KeyValuePair<Type, object>>();
        foreach (var type in s_ownTypes)
            if (ByType(type) is { } feature) own.Add(new(type, feature));
        if (_zeroCopyResponse is not null) own.Add(new(typeof(ZeroCopyResponse), _zeroCopyResponse));
        if (_reverseProxy is not null) own.Add(new(typeof(IReverseProxyFeature), _reverseProxy));
        if (_pool is not null) own.Add(new(typeof(BalancingRequestFeature), _pool));
        if (_upstreamTiming is not null) own.Add(new(typeof(UpstreamTiming), _upstreamTiming));
        if (_forwarderError is not null) own.Add(new(typeof(IForwarderErrorFeature), _forwarderError));
        if (_receivedConnection is not null) own.Add(new(typeof(ReceivedConnectionField), _receivedConnection));
        if (_others is { } others)
            foreach (var pair in others)
                if (!s_ownTypes.Contains(pair.Key)) own.Add(pair);
        foreach (var pair in Connection.Features)
            if (!own.Exists(p => p.Key == pair.Key)) own.Add(pair);
        return own.GetEnumerator();
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private static readonly Type[] s_ownTypes =
    [
        typeof(IHttpRequestFeature), typeof(IHttpResponseFeature), typeof(IHttpResponseBodyFeature), typeof(IRequestBodyPipeFeature),
        typeof(IHttpRequestBodyDetectionFeature), typeof(IHttpConnectionFeature), typeof(IHttpRequestLifetimeFeature),
        typeof(IHttpRequestIdentifierFeature), typeof(IHttpMaxRequestBodySizeFeature), typeof(IEndpointFeature), typeof(IRouteValuesFeature),
        typeof(IHttpUpgradeFeature),
    ];

    // As in Kestrel's collection, the upgrade feature is always there; an upgrade request never reaches this layer (its
    // parser hands such heads to Kestrel), so no request here is upgradable. Asked twice per proxied request
    // (ZeroCopyEligibility): absent, each ask was a miss through to the connection's dictionary.
    bool IHttpUpgradeFeature.IsUpgradableRequest => false;

    Task<Stream> IHttpUpgradeFeature.UpgradeAsync() => throw new InvalidOperationException("Cannot upgrade a non-upgradable request.");

    Microsoft.AspNetCore.Http.Endpoint? IEndpointFeature.Endpoint
    {
        get => _endpointValue;
        set => _endpointValue = value;
    }

    Microsoft.AspNetCore.Routing.RouteValueDictionary IRouteValuesFeature.RouteValues
    {
        get => _routeValuesValue ??= new Microsoft.AspNetCore.Routing.RouteValueDictionary();
        set => _routeValuesValue = value;
    }
}

/// <summary>The request object of one host context type: it keeps the host's context (and HttpContext) for reuse, as Kestrel does.</summary>
internal sealed class Http1Exchange<TContext> : Http1Exchange, IHostContextContainer<TContext> where TContext : notnull
{
    public TContext? HostContext { get; set; }

    /// <summary>The context of the request being served (from CreateContext to DisposeContext).</summary>
    internal TContext? Current { get; set; }
}
