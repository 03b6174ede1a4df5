using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using ZcProxy.Core.Transport.Http1;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// The own HTTP/1.1 layer's memory of features a connection does not have: asked again, an absent feature costs no
/// dictionary lookup, and a feature set on the connection afterwards is found (the collection's revision moved).
/// </summary>
public class ConnectionFeatureMissesTests
{
    [Fact]
    public void AnAbsentFeature_IsAskedOfTheConnectionOnce_WhileItsCollectionIsUnchanged()
    {
        var connection = new CountingFeatures();
        connection.Set<IConnectionIdFeature>(new IdFeature());
        var misses = new ConnectionFeatureMisses();

        for (int i = 0; i < 3; i++)
        {
            Assert.Null(misses.Find(connection, typeof(ITlsConnectionFeature)));
            Assert.Null(misses.Find(connection, typeof(IHttpMinRequestBodyDataRateFeature)));
        }

        Assert.Equal(2, connection.Lookups);
    }

    [Fact]
    public void APresentFeature_IsAskedOfTheConnectionEveryTime()
    {
        var connection = new CountingFeatures();
        var id = new IdFeature();
        connection.Set<IConnectionIdFeature>(id);
        var misses = new ConnectionFeatureMisses();

        Assert.Same(id, misses.Find(connection, typeof(IConnectionIdFeature)));
        Assert.Same(id, misses.Find(connection, typeof(IConnectionIdFeature)));

        Assert.Equal(2, connection.Lookups);
    }

    [Fact]
    public void AFeatureSetOnTheConnectionAfterAMiss_IsFound()
    {
        var connection = new CountingFeatures();
        var misses = new ConnectionFeatureMisses();
        Assert.Null(misses.Find(connection, typeof(IConnectionIdFeature)));

        var id = new IdFeature();
        connection.Set<IConnectionIdFeature>(id);

        Assert.Same(id, misses.Find(connection, typeof(IConnectionIdFeature)));
    }

    [Fact]
    public void MoreMissesThanItKeeps_AreStillAnsweredAsAbsent()
    {
        var connection = new CountingFeatures();
        var misses = new ConnectionFeatureMisses();
        Type[] absent = [typeof(ITlsConnectionFeature), typeof(IHttpMinRequestBodyDataRateFeature), typeof(IConnectionIdFeature),
            typeof(IConnectionItemsFeature), typeof(IConnectionLifetimeFeature), typeof(IHttpUpgradeFeature)];

        foreach (var type in absent) Assert.Null(misses.Find(connection, type));
        foreach (var type in absent) Assert.Null(misses.Find(connection, type));
    }

    private sealed class IdFeature : IConnectionIdFeature
    {
        public string ConnectionId { get; set; } = "c";
    }

    /// <summary>A connection's collection that counts the asks reaching it.</summary>
    private sealed class CountingFeatures : IFeatureCollection
    {
        private readonly FeatureCollection _inner = new();

        public int Lookups { get; private set; }
        public bool IsReadOnly => false;
        public int Revision => _inner.Revision;

        public object? this[Type key]
        {
            get
            {
                Lookups++;
                return _inner[key];
            }
            set => _inner[key] = value;
        }

        public TFeature? Get<TFeature>() => (TFeature?)this[typeof(TFeature)];
        public void Set<TFeature>(TFeature? instance) => this[typeof(TFeature)] = instance;
        public IEnumerator<KeyValuePair<Type, object>> GetEnumerator() => _inner.GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
