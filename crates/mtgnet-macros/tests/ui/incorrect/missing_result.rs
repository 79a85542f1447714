struct Condition;

#[mtgnet_macros::service]
pub trait Math {
    async fn add(&self, a: i64, b: i64);
    async fn sub(&self, a: i64, b: i64) -> i64;
}

fn main() {}
