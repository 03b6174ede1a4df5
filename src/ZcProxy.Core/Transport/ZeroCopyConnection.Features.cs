using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Transport;

/// <summary>The ConnectionContext surface Kestrel reads: id, transport pipe, items, endpoints, lifetime, features.</summary>
internal sealed partial class ZeroCopyConnection : IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature,
    IConnectionLifetimeFeature, IConnectionEndPointFeature
{
    private static long s_lastId = DateTime.UtcNow.Ticks;
    private IDuplexPipe? _transportOverride;
    private IFeatureCollection? _features;
    private IDictionary<object, object?>? _items;
    private string? _connectionId;

    public override string ConnectionId
    {
        get => _connectionId ??= NewConnectionId();
        set => _connectionId = value;
    }

    /// <summary>Kestrel's byte stream. Replacing it is refused: holes and splices write to the socket underneath.</summary>
    IDuplexPipe IConnectionTransportFeature.Transport
    {
        get => _transportOverride ?? this;
        set => _transportOverride = value;
    }

    public override IDuplexPipe Transport
    {
        get => _transportOverride ?? this;
        set => _transportOverride = value;
    }

    public override IFeatureCollection Features => _features ??= CreateFeatures();

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new Dictionary<object, object?>();
        set => _items = value;
    }

    /// <summary>Its source is made when first asked for (see <see cref="OnDemandCancellation"/>).</summary>
    public override CancellationToken ConnectionClosed
    {
        get => _closed.Token;
        set => throw new NotSupportedException("the transport owns ConnectionClosed");
    }

    public override EndPoint? LocalEndPoint { get; set; }
    public override EndPoint? RemoteEndPoint { get; set; }

    void IConnectionLifetimeFeature.Abort() => Abort(new ConnectionAbortedException("the connection was aborted by the application"));

    private FeatureCollection CreateFeatures()
    {
        var features = new FeatureCollection(7);
        features.Set<IConnectionIdFeature>(this);
        features.Set<IConnectionTransportFeature>(this);
        features.Set<IConnectionItemsFeature>(this);
        features.Set<IConnectionLifetimeFeature>(this);
        features.Set<IConnectionEndPointFeature>(this);
        features.Set(this); // the zero-copy connection itself, for the request middleware
        return features;
    }

    /// <summary>13 characters of base-32, like Kestrel's ids (unique per process, cheap).</summary>
    private static string NewConnectionId()
    {
        long id = Interlocked.Increment(ref s_lastId);
        return string.Create(13, id, static (span, value) =>
        {
            const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
            for (int i = 12; i >= 0; i--)
            {
                span[i] = Alphabet[(int)(value & 31)];
                value >>= 5;
            }
        });
    }
}
