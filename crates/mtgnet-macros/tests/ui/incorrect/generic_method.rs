struct Condition;

#[mtgnet_macros::service]
pub trait Math {
    async fn add<T>(&self, a: T, b: T) -> Result<T, Condition>;
}

fn main() {}
